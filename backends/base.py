"""The storage contract every backend implements, and the helpers around it.

The protocol talks to storage only through :class:`AbstractPathIO` (aioftp 0.28's
interface plus a few additions: transactional writes, ``realpath``,
``lstat_is_symlink``, ``raw_file``).  Failures cross this boundary as
``PathIOError`` whose cause is a built-in exception chosen by meaning (see
``backends.errors``), so the protocol can pick the right reply without knowing
which store it talks to.
"""

from __future__ import annotations

import abc
import asyncio
import functools
import inspect
import io
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Mapping
from pathlib import PurePath
from typing import Any, Generic, TypeVar, cast

from .checksums import Stored
from .errors import PathIOError, PathIsNotAbsolute

__all__ = (
    "DEFAULT_BLOCK_SIZE",
    "AbstractAsyncLister",
    "AbstractPathIO",
    "AsyncLister",
    "AsyncPathIOContext",
    "HandleMethods",
    "PathIONursery",
    "check_handle",
    "moves_bytes_as",
    "universal_exception",
    "with_timeout",
)

DEFAULT_BLOCK_SIZE = 8192

PathType = TypeVar("PathType", bound=PurePath)
F = TypeVar("F", bound=Callable[..., Any])

# Exceptions that must keep their identity: cancellation and end of iteration are
# control flow; NotImplementedError and PathIsNotAbsolute are bugs in the caller,
# and reporting them as a storage failure would hide them behind an FTP reply.
_PASS_THROUGH = (PathIOError, NotImplementedError, StopAsyncIteration, PathIsNotAbsolute)


def _wrap_current() -> PathIOError:
    return PathIOError(reason=sys.exc_info())


def universal_exception(func: F) -> F:
    """Turn any storage failure into ``PathIOError`` while keeping its cause.

    Works for coroutine functions, async generator functions and plain functions
    (a plain function's async-iterable result, like ``list()``'s, is wrapped so
    that errors raised while iterating are converted too).
    """
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def coroutine_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return await func(*args, **kwargs)
            except _PASS_THROUGH:
                raise
            except Exception as exc:
                raise _wrap_current() from exc

        return cast(F, coroutine_wrapper)

    if inspect.isasyncgenfunction(func):

        @functools.wraps(func)
        async def generator_wrapper(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            agen = func(*args, **kwargs)
            try:
                async for item in agen:
                    yield item
            except _PASS_THROUGH:
                raise
            except Exception as exc:
                raise _wrap_current() from exc
            finally:
                await agen.aclose()

        return cast(F, generator_wrapper)

    @functools.wraps(func)
    def function_wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            result = func(*args, **kwargs)
        except _PASS_THROUGH:
            raise
        except Exception as exc:
            raise _wrap_current() from exc
        if hasattr(result, "__anext__") and not isinstance(result, AsyncLister):
            return AsyncLister(result)
        return result

    return cast(F, function_wrapper)


def with_timeout(func: F) -> F:
    """Bound a coroutine method by ``self.timeout`` so a stalled store cannot hang a session.

    ``asyncio.timeout`` is used rather than ``wait_for`` because it creates no extra
    task: this wraps every read and write of a transfer.
    """

    @functools.wraps(func)
    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        timeout = self.timeout
        if timeout is None:
            return await func(self, *args, **kwargs)
        async with asyncio.timeout(timeout):
            return await func(self, *args, **kwargs)

    return cast(F, wrapper)


class AbstractAsyncLister(abc.ABC):
    """An async iterator that can also be awaited to collect everything into a list.

    aioftp's listers behave this way, so code doing ``await path_io.list(p)`` keeps
    working; ``async for`` stays the memory-friendly way.
    """

    def __init__(self, *, timeout: float | None = None) -> None:
        self.timeout = timeout

    def __aiter__(self) -> AbstractAsyncLister:
        return self

    @abc.abstractmethod
    async def __anext__(self) -> Any:
        """Return the next entry or raise ``StopAsyncIteration``."""

    async def _collect(self) -> list[Any]:
        return [item async for item in self]

    def __await__(self) -> Generator[Any, None, list[Any]]:
        return self._collect().__await__()


class AsyncLister(AbstractAsyncLister):
    """Adapts any async iterator into a lister with a per-entry timeout and error mapping."""

    def __init__(self, source: AsyncIterator[Any], *, timeout: float | None = None) -> None:
        super().__init__(timeout=timeout)
        self._source = source

    async def __anext__(self) -> Any:
        try:
            if self.timeout is None:
                return await self._source.__anext__()
            async with asyncio.timeout(self.timeout):
                return await self._source.__anext__()
        except _PASS_THROUGH:
            raise
        except Exception as exc:
            raise _wrap_current() from exc

    async def aclose(self) -> None:
        """Release the underlying directory handle when iteration stops early."""
        aclose = getattr(self._source, "aclose", None)
        if aclose is not None:
            await aclose()


def check_handle(file: Any) -> None:
    """Refuse what ``open()`` returns where a method takes the handle ``_open`` made.

    Its ``seek``/``read`` are coroutine functions, so calling them as a handle's
    would silently do nothing; a ``ValueError`` says so, as aioftp does.  Other
    handles are duck-typed: subclasses may return their own from ``_open``.
    """
    if isinstance(file, AsyncPathIOContext):
        raise ValueError(
            f"{type(file).__name__} is not a file handle of this path I/O; "
            "call the methods of what open() returned, or pass its .file"
        )


class _BlockIterator:
    def __init__(self, read: Callable[[int], Awaitable[bytes]], count: int) -> None:
        self._read = read
        self._count = count

    def __aiter__(self) -> _BlockIterator:
        return self

    async def __anext__(self) -> bytes:
        data = await self._read(self._count)
        if not data:
            raise StopAsyncIteration
        return data


class AsyncPathIOContext:
    """What ``open()`` returns: awaitable (``f = await pio.open(p)``) and an async context.

    Leaving the context cleanly commits the file (``close``); leaving it by an
    exception, cancellation included, rolls the write back (``abort``).  Only one
    of the two ever happens: after either, both are no-ops.
    """

    def __init__(self, pathio: AbstractPathIO[Any], args: tuple, kwargs: dict) -> None:
        self.pathio = pathio
        self.args = args
        self.kwargs = kwargs
        self.file: Any = None
        self._finished = False

    @universal_exception
    async def _open(self) -> AsyncPathIOContext:
        if self.file is None:
            if self.pathio.timeout is None:
                self.file = await self.pathio._open(*self.args, **self.kwargs)
            else:
                async with asyncio.timeout(self.pathio.timeout):
                    self.file = await self.pathio._open(*self.args, **self.kwargs)
        return self

    def __await__(self) -> Generator[Any, None, AsyncPathIOContext]:
        return self._open().__await__()

    async def __aenter__(self) -> AsyncPathIOContext:
        return await self._open()

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            await self.close()
        else:
            await self.abort()

    @property
    def raw_file(self) -> Any:
        """The OS-level file for zero-copy ``sendfile``, or None when there is none."""
        return getattr(self.file, "raw_file", None)

    def immediate_writer(self) -> Callable[[Any], None] | None:
        """A synchronous write, for storage whose writes never wait (a path I/O with
        ``write_now``: local disk written on the loop, memory); None otherwise."""
        write_now = getattr(self.pathio, "write_now", None)
        if write_now is None or self.file is None:
            return None
        # a subclass that overrides ``write`` (to count, to fail, to transform) must
        # see every write: only the class that defines both may skip the coroutine
        kind = type(self.pathio)
        if _defined_by(kind, "write") is not _defined_by(kind, "write_now"):
            return None
        return functools.partial(write_now, self.file)

    async def read(self, block_size: int = DEFAULT_BLOCK_SIZE) -> bytes:
        return await self.pathio.read(self.file, block_size)

    async def write(self, data: bytes) -> None:
        await self.pathio.write(self.file, data)

    async def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return await self.pathio.seek(self.file, offset, whence)

    async def keep_checksums(self, values: Mapping[str, str]) -> None:
        """Hand storage the checksums of every byte of this file (see
        ``AbstractPathIO.keep_checksums``); a no-op where it keeps none."""
        keep = getattr(self.pathio, "keep_checksums", None)  # duck-typed path-ios lack it
        if keep is not None and self.file is not None and not self._finished:
            await keep(self.file, values)

    async def close(self) -> None:
        """Commit: the written data becomes the file's content."""
        if self._finished or self.file is None:
            return
        self._finished = True
        await self.pathio.close(self.file)

    async def abort(self) -> None:
        """Roll back: the target is left as it was before ``open``."""
        if self._finished or self.file is None:
            return
        self._finished = True
        await self.pathio.abort(self.file)

    def iter_by_block(self, count: int = DEFAULT_BLOCK_SIZE) -> _BlockIterator:
        return _BlockIterator(self.read, count)


#: The methods that decide which bytes a file holds and which a download returns.
_BYTE_METHODS = ("_open", "read", "write", "seek", "close")


def moves_bytes_as(pathio: Any, owner: type) -> bool:
    """Whether ``pathio`` reads and writes bytes exactly as ``owner`` does.

    Checksums are kept only by a backend class whose bytes go to storage unchanged:
    a subclass that overrides a write or a read (to compress, encrypt, transform)
    would make a checksum of the bytes sent disagree with the bytes a download
    returns, so such a subclass neither keeps nor answers any.
    """
    kind = type(pathio)
    return all(_defined_by(kind, name) is _defined_by(owner, name) for name in _BYTE_METHODS)


def _defined_by(kind: type, name: str) -> type | None:
    """The class in ``kind``'s MRO whose body defines ``name``."""
    for klass in kind.__mro__:
        if name in vars(klass):
            return klass
    return None


class AbstractPathIO(abc.ABC, Generic[PathType]):
    """The storage contract (aioftp 0.28's ``AbstractPathIO`` plus our additions).

    Subclasses decorate their public coroutine methods with ``universal_exception``
    (outermost) and ``with_timeout`` and raise causes by meaning.  ``open`` is
    implemented here on top of the ``_open`` hook; the handle ``_open`` returns is
    what ``read``/``write``/``seek``/``close``/``abort`` receive.
    """

    #: what monitoring calls this storage (metrics labels); subclasses name themselves
    backend_name = "custom"
    #: ``open(path, "xb")`` is supported: written like "wb", but the commit refuses
    #: (FileExistsError) when the name exists by then, whoever made it meanwhile
    exclusive_create = False

    def __init__(
        self,
        timeout: float | None = None,
        connection: Any = None,
        state: Any = None,
    ) -> None:
        self.timeout = timeout
        self.connection = connection

    @property
    def state(self) -> Any:
        """What instances of this backend share (``PathIONursery`` passes it on)."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(timeout={self.timeout!r})"

    @abc.abstractmethod
    async def exists(self, path: PathType) -> bool: ...

    @abc.abstractmethod
    async def is_dir(self, path: PathType) -> bool: ...

    @abc.abstractmethod
    async def is_file(self, path: PathType) -> bool: ...

    @abc.abstractmethod
    async def mkdir(
        self, path: PathType, *, parents: bool = False, exist_ok: bool = False
    ) -> None: ...

    @abc.abstractmethod
    async def rmdir(self, path: PathType) -> None: ...

    @abc.abstractmethod
    async def unlink(self, path: PathType) -> None: ...

    @abc.abstractmethod
    def list(self, path: PathType) -> AbstractAsyncLister:
        """Children of ``path``; a file or a missing path lists as empty, as in aioftp."""

    @abc.abstractmethod
    async def stat(self, path: PathType) -> Any: ...

    @abc.abstractmethod
    async def _open(self, path: PathType, mode: str = "rb") -> Any: ...

    @abc.abstractmethod
    async def seek(self, file: Any, offset: int, whence: int = io.SEEK_SET) -> int: ...

    @abc.abstractmethod
    async def write(self, file: Any, data: bytes) -> None:
        """Write ``data`` (bytes or a memoryview).  A view is only valid during the
        call: the caller reuses its buffer, so copy whatever is kept afterwards."""

    @abc.abstractmethod
    async def read(self, file: Any, block_size: int) -> bytes: ...

    @abc.abstractmethod
    async def close(self, file: Any) -> None:
        """Close and commit a handle from ``_open``."""

    @abc.abstractmethod
    async def rename(self, source: PathType, destination: PathType) -> None: ...

    def open(self, path: PathType, mode: str = "rb") -> AsyncPathIOContext:
        return AsyncPathIOContext(self, (path,), {"mode": mode})

    async def abort(self, file: Any) -> None:
        """Close a handle discarding what was written.

        The default only closes, which suits stores that cannot roll back; the
        bundled backends override it.
        """
        await self.close(file)

    async def realpath(self, path: PathType) -> PathType:
        """The path with symlinks resolved, so the server can refuse escapes from a root."""
        return path

    async def lstat_is_symlink(self, path: PathType) -> bool:
        """Whether ``path`` itself is a symlink (False where the store has none)."""
        return False

    async def stored_checksums(self, path: PathType) -> Stored | None:
        """The checksums kept with the file at ``path`` that are valid for its content
        now (maybe none) and its size, learned without reading its bytes; None when
        the store cannot tell (the default: it keeps none).  A missing file raises
        ``FileNotFoundError``, a directory ``IsADirectoryError``.
        """
        return None

    async def keep_checksums(self, file: Any, values: Mapping[str, str]) -> None:
        """Keep ``values`` (algorithm key -> hex digest, see ``backends.checksums``),
        computed from every byte of the handle ``file``, with the file.

        A handle opened "wb"/"xb": they become the file's checksums when it is
        committed, and go with it if it is rolled back.  A handle opened "rb" and read
        to its end: they are kept now, unless the file changed since it was opened.
        Anything else is ignored.  A store that keeps no checksums (the default)
        ignores them all; whatever changes a file's bytes must drop what it kept.
        """


class PathIONursery:
    """Creates path-io instances that all share the first instance's state.

    The server calls the factory once per session; with a memory backend every
    session must see the same tree.
    """

    def __init__(self, factory: Callable[..., AbstractPathIO[Any]]) -> None:
        self.factory = factory
        self.state: Any = None

    def __call__(self, *args: Any, state: Any = None, **kwargs: Any) -> AbstractPathIO[Any]:
        # An explicit state wins, so nurseries can nest (the server wraps whatever
        # factory it is given, and that may already be a nursery).
        instance = self.factory(*args, state=self.state if state is None else state, **kwargs)
        if self.state is None:
            self.state = instance.state
        return instance


class HandleMethods:
    """``seek``/``read``/``write``/``close``/``abort`` for a backend whose open handles
    do the work themselves (object stores: S3, fsspec).

    ``writer_type`` is the class ``_open`` returns for writing; any other handle is a
    reader.  Readers have ``read(n)`` (a coroutine), ``seek`` and ``close`` (plain or
    a coroutine); writers have ``write``, ``commit`` and ``abort`` coroutines and
    ``seek``.  Put it before ``AbstractPathIO`` in the bases.
    """

    writer_type: type[Any] = type(None)

    @universal_exception
    @with_timeout
    async def seek(self, file: Any, offset: int, whence: int = io.SEEK_SET) -> int:
        check_handle(file)
        return file.seek(offset, whence)

    @universal_exception
    @with_timeout
    async def write(self, file: Any, data: bytes) -> None:
        check_handle(file)
        if not isinstance(file, self.writer_type):
            raise io.UnsupportedOperation("not writable")
        await file.write(data)

    @universal_exception
    @with_timeout
    async def read(self, file: Any, block_size: int) -> bytes:
        check_handle(file)
        if isinstance(file, self.writer_type):
            raise io.UnsupportedOperation("not readable")
        return await file.read(block_size)

    @universal_exception
    async def close(self, file: Any) -> None:
        check_handle(file)
        if isinstance(file, self.writer_type):
            await file.commit()
        elif inspect.isawaitable(closing := file.close()):
            await closing

    @universal_exception
    async def abort(self, file: Any) -> None:
        check_handle(file)
        if isinstance(file, self.writer_type):
            await file.abort()
        elif inspect.isawaitable(closing := file.close()):
            await closing
