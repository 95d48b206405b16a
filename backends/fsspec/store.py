"""What every path-io of one root shares: the filesystem instance, its threads, cleanups.

One instance per root, shared by all sessions, created on first use inside the
running loop (an async filesystem binds itself to the loop it is created in, and a
root may be configured before any loop runs), closed with the server.

:meth:`FsspecStore.call` is the one bridge to the filesystem: on an async filesystem
it awaits the ``_``-prefixed coroutine on the loop; on a synchronous one it runs the
method in this root's thread pool, so a slow filesystem never blocks the loop.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import inspect
import logging
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import PurePosixPath
from typing import Any, TypeVar

import fsspec

from .options import OBJECT_STORES, FsspecSettings, is_async
from .urls import to_fs_path

__all__ = ("FsspecStore", "translate")

logger = logging.getLogger("backends.fsspec")

T = TypeVar("T")


def translate(exc: BaseException, where: object) -> BaseException:
    """The built-in meaning of a filesystem failure that is not already an ``OSError``.

    fsspec implementations raise ``OSError`` subclasses for most causes; network
    libraries under async filesystems raise their own types, matched by name here so
    that this module needs none of them installed.
    """
    if isinstance(exc, OSError):
        return exc
    names = {cls.__module__.split(".")[0] + "." + cls.__name__ for cls in type(exc).__mro__}
    if "aiohttp.ClientConnectionError" in names or "aiohttp.ServerDisconnectedError" in names:
        return ConnectionError(errno.ECONNRESET, f"storage unreachable: {exc}", str(where))
    if "aiohttp.ClientResponseError" in names:
        status = getattr(exc, "status", 0)
        if status == 404:
            return FileNotFoundError(errno.ENOENT, str(exc), str(where))
        if status in (401, 403):
            return PermissionError(errno.EACCES, str(exc), str(where))
    if "botocore.NoCredentialsError" in names:
        return PermissionError(errno.EACCES, f"no usable credentials: {exc}", str(where))
    if "botocore.EndpointConnectionError" in names:
        return ConnectionError(errno.ECONNREFUSED, f"storage unreachable: {exc}", str(where))
    return exc


class FsspecStore:
    """The filesystem of one root and how to call it."""

    def __init__(self, cls: type[fsspec.AbstractFileSystem], kwargs: dict[str, Any],
                 settings: FsspecSettings, protocol: str, root: PurePosixPath) -> None:
        self.cls = cls
        self.kwargs = kwargs
        self.settings = settings
        self.protocol = protocol
        self.root = root
        self.is_async = is_async(cls)
        markers = settings.dir_markers
        self.dir_markers = protocol in OBJECT_STORES if markers is None else markers
        self.root_marker: str = getattr(cls, "root_marker", "")
        self._fs: fsspec.AbstractFileSystem | None = None
        self._creating: asyncio.Lock | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._closed = False

    def __repr__(self) -> str:
        return f"FsspecStore({self.protocol!r}, root={str(self.root)!r})"

    # -- the filesystem ----------------------------------------------------------------

    def fs_path(self, path: PurePosixPath) -> str:
        return to_fs_path(path, self.root_marker)

    @property
    def executor(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                self.settings.threads, thread_name_prefix=f"fsspec-{self.protocol}"
            )
        return self._executor

    async def filesystem(self) -> fsspec.AbstractFileSystem:
        if self._fs is not None:
            return self._fs
        if self._closed:
            raise ConnectionError(errno.ESHUTDOWN, "the storage backend is closed")
        if self._creating is None:
            self._creating = asyncio.Lock()
        async with self._creating:
            if self._fs is None:
                # our own instance: fsspec's instance cache would share it (and its
                # loop) with whoever else asked for the same arguments
                kwargs = dict(self.kwargs, skip_instance_cache=True)
                if self.is_async:
                    self._fs = self.cls(asynchronous=True, loop=asyncio.get_running_loop(), **kwargs)
                else:
                    # constructors may connect (sftp): off the loop as well
                    cls = self.cls
                    self._fs = await self.in_thread(lambda: cls(**kwargs))
        return self._fs

    def in_thread(self, func: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run a blocking call in this root's pool; the caller awaits it."""
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self.executor, functools.partial(func, *args))

    async def call(self, name: str, *args: Any, where: object = None, **kwargs: Any) -> Any:
        """``fs._name(...)`` awaited on an async filesystem, ``fs.name(...)`` in a thread otherwise."""
        fs = await self.filesystem()
        try:
            if self.is_async:
                method = getattr(fs, "_" + name, None)
                if method is not None and inspect.iscoroutinefunction(method):
                    return await method(*args, **kwargs)
                # no coroutine twin: the blocking version bridges to the loop from a thread
            return await self.in_thread(functools.partial(getattr(fs, name), *args, **kwargs))
        except Exception as exc:
            translated = translate(exc, where if where is not None else (args[0] if args else ""))
            if translated is exc:
                raise
            raise translated from exc

    # -- life cycle ----------------------------------------------------------------------

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run cleanup that must finish even if its caller is cancelled (aborted uploads)."""
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def aclose(self) -> None:
        """Let pending cleanups finish, close the filesystem's sessions, stop the threads."""
        self._closed = True
        if self._background:
            _, pending = await asyncio.wait(list(self._background), timeout=30)
            for task in pending:
                task.cancel()
            if pending:
                logger.warning("fsspec backend closed with %d cleanups unfinished", len(pending))
                await asyncio.wait(pending)
        fs, self._fs = self._fs, None
        if fs is not None and self.is_async:
            try:
                await _close_async(fs)
            except Exception:
                logger.exception("closing the %s filesystem failed", self.protocol)
        executor, self._executor = self._executor, None
        if executor is not None:
            # a thread stuck in a dead filesystem must not hold the server's close
            executor.shutdown(wait=False, cancel_futures=True)


async def _close_async(fs: Any) -> None:
    """Close the network sessions an async filesystem opened on our loop."""
    creator = getattr(fs, "_s3creator", None)  # s3fs
    if creator is not None:
        fs._s3 = None
        fs._s3creator = None
        if hasattr(creator, "clear"):
            await creator.clear()
        else:
            await creator.__aexit__(None, None, None)
        return
    for name in ("_session", "session"):
        session = getattr(fs, name, None)
        close = getattr(session, "close", None)
        if close is not None and not getattr(session, "closed", False):
            result = close()
            if inspect.isawaitable(result):
                await result
            return
