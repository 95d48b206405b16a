"""Local disk: ``PathIO`` (blocking, the fast default) and ``AsyncPathIO`` (thread pool).

Both share the same synchronous operations below; ``PathIO`` calls them inline
(local disk calls are short and an executor hop per block costs more than it
saves), ``AsyncPathIO`` runs every one of them in an executor so the loop never
blocks, e.g. on a network filesystem.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import io
import os
import secrets
import stat as stat_module
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, Protocol, TypeVar

from . import localsums
from .base import (
    AbstractAsyncLister,
    AbstractPathIO,
    AsyncLister,
    check_handle,
    moves_bytes_as,
    universal_exception,
    with_timeout,
)
from .checksums import Stored
from .undo import UndoHeader, host_identity, iter_records, record, try_lock, write_all

__all__ = ("AsyncPathIO", "DurablePathIO", "PathIO", "partial_name")

T = TypeVar("T")

_PARTIAL_MARK = ".gateway-partial-"
_UNDO_MARK = ".gateway-undo-"


def is_internal_name(name: str) -> bool:
    """Whether ``name`` is one of our upload temporaries (a partial file or an undo
    file): never listed, never addressable by a client."""
    return name.startswith(".") and (_PARTIAL_MARK in name or _UNDO_MARK in name)


def _refuse_internal(path: Path | str) -> None:
    if is_internal_name(os.path.basename(os.fspath(path))):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), os.fspath(path))
_LIST_BATCH = 512


def partial_head(name: str) -> str:
    """The part of ``name`` a temporary's name keeps: at most ``_PARTIAL_NAME_BYTES``
    bytes, cut at a character boundary."""
    raw = os.fsencode(name)[:_PARTIAL_NAME_BYTES]
    while raw:
        try:
            head = os.fsdecode(raw)
            if os.fsencode(head) == raw:
                return head
        except UnicodeDecodeError:
            pass
        raw = raw[:-1]
    return ""


def partial_name(name: str, mark: str = "") -> str:
    """A hidden sibling name for an upload in progress, under NAME_MAX (255 bytes):
    the name is cut by bytes, not characters, at a character boundary."""
    return f".{partial_head(name)}{mark or _PARTIAL_MARK}{secrets.token_hex(6)}"


#: Bytes of the original name kept in a partial name (the rest is the mark and hex).
_PARTIAL_NAME_BYTES = 200


def _binary_mode(mode: str) -> tuple[str, bool]:
    """Split ``mode`` into its kind (r, w, a, x) and whether it is read-write."""
    chars = set(mode)
    kinds = chars & {"r", "w", "a", "x"}
    if "b" not in chars or len(kinds) != 1 or chars - {"r", "w", "a", "x", "b", "+"}:
        raise ValueError(f"unsupported mode {mode!r}; expected rb, wb, xb, ab or r+b")
    return kinds.pop(), "+" in chars


def _link_into_place(partial: str, target: Path) -> None:
    """Give ``partial`` the name ``target`` unless that name exists: a hard link is
    made only where the name is free, atomically, even against another machine on
    a shared filesystem.  Where hard links are not supported, the name is checked,
    then taken (a narrow race left to such filesystems)."""
    try:
        os.link(partial, target)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
            raise
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), os.fspath(target)) from None
        os.replace(partial, target)
        return
    os.unlink(partial)


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # some filesystems do not open directories; the file itself is synced
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _LocalFile:
    """An open local file plus what is needed to commit or roll it back.

    * ``wb``: writes go to a hidden sibling; commit is ``os.replace`` over the
      target, rollback deletes the sibling.
    * ``ab`` and ``r+b``: writes go in place.  Before the first one, a hidden undo
      journal (``backends.undo``) records the size at open; with ``r+b`` the old
      bytes a write covers are first saved in it too (only the part below the size
      at open, once).  Rollback puts them back and truncates to the size at open:
      the file is exactly what it was.  A process killed mid-write leaves the
      journal, and ``backends.recovery`` does the same rollback at the next start.

    Temporaries are ``flock``-ed while in use, so start-up recovery can tell a live
    upload from an abandoned one.

    Checksums (``backends.localsums``): a new file's are attached to the temporary
    just before it is renamed into place; an in-place write removes the file's before
    its first byte changes.

    A lock serialises the operations: with ``AsyncPathIO`` a cancelled write may
    still be running in its thread when the rollback starts.
    """

    __slots__ = (
        "file",
        "raw_file",
        "target",
        "partial",
        "_lock",
        "_in_place",
        "_append",
        "_exclusive",
        "_size",
        "_floor",
        "_check_position",
        "durable",
        "_undo",
        "_undo_path",
        "_undo_start",
        "_saved",
        "_checksums",
        "_opened",
    )

    def __init__(self, path: Path, mode: str, durable: bool = False) -> None:
        _refuse_internal(path)
        kind, plus = _binary_mode(mode)
        self.durable = durable and (kind != "r" or plus)  # only writers have bytes to sync
        self._lock = threading.Lock()
        self.target = path
        self.partial: str | None = None
        self.raw_file: Any = None
        self._in_place = kind == "a" or (kind == "r" and plus)
        self._append = kind == "a"
        self._size = 0
        self._floor: int | None = None  # lowest offset written in place, if any
        self._check_position = self._in_place
        self._undo: int | None = None  # the undo journal's descriptor (in-place writes)
        self._undo_path = ""
        self._undo_start = 0  # where its records start
        self._saved: list[tuple[int, int]] = []  # ranges below _size already saved
        self._exclusive = kind == "x"
        self._checksums: dict[str, str] | None = None  # to attach at commit
        self._opened: tuple[int, int] | None = None  # a reader's (size, mtime) at open
        if kind in ("w", "x"):
            self._open_partial(path, plus)
            return
        if self._in_place and os.path.islink(path):
            # the journal goes beside the file itself, naming it, as recovery expects
            self.target = path = Path(os.path.realpath(path))
        self.file = open(path, mode)
        st = os.fstat(self.file.fileno())
        if self._in_place:
            self._size = st.st_size
        else:
            self.raw_file = self.file
            self._opened = (st.st_size, st.st_mtime_ns)

    def _open_partial(self, path: Path, plus: bool) -> None:
        target = os.fspath(path)
        if os.path.islink(target):
            # Write through the link as a plain open would, not over the link.
            target = os.path.realpath(target)
        try:
            st = os.stat(target)
        except FileNotFoundError:
            st = None
        if st is not None and stat_module.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), os.fspath(path))
        directory, name = os.path.split(target)
        partial = os.path.join(directory, partial_name(name))
        self.file = open(partial, "x+b" if plus else "xb")
        self.partial = partial
        try_lock(self.file.fileno())  # held until closed: "an upload is running here"
        self.target = Path(target)
        if st is not None:
            # os.replace keeps the new file's mode; keep the old file's instead.
            try:
                os.chmod(self.file.fileno(), stat_module.S_IMODE(st.st_mode))
            except OSError:
                pass

    def read(self, block_size: int) -> bytes:
        with self._lock:
            return self.file.read(block_size)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        with self._lock:
            if self._check_position:
                # Only the first write after open or seek can lower the floor: later
                # writes continue forward from it.  Appends always land at the end.
                position = self._size if self._append else min(self.file.tell(), self._size)
                if self._floor is None or position < self._floor:
                    self._floor = position
                self._check_position = False
            if self._in_place:
                if self._undo is None:
                    self._open_undo()
                if not self._append:
                    self._save_old(self.file.tell(), len(data))
            self.file.write(data)

    def keep_checksums(self, values: dict[str, str]) -> None:
        """A new file's checksums, attached at commit; a reader's, attached now if the
        file was read to its end and has not changed since it was opened."""
        with self._lock:
            if self.partial is not None:
                self._checksums = dict(values)
                return
            if self._opened is None or self.file.closed:
                return
            st = os.fstat(self.file.fileno())
            if (st.st_size, st.st_mtime_ns) == self._opened and self.file.tell() >= st.st_size:
                try:
                    localsums.keep(self.file.fileno(), values)
                except OSError:
                    pass  # a cache, not the file: answered by reading it next time

    def _open_undo(self) -> None:
        """Create the journal and write its header before any byte of the file changes
        (and drop the checksums kept for the bytes about to change)."""
        localsums.drop(self.file.fileno())
        directory, name = os.path.split(os.fspath(self.target))
        path = os.path.join(directory, partial_name(name, _UNDO_MARK))
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            locked = try_lock(fd) is True
            host, boot = host_identity()
            inode = os.fstat(self.file.fileno()).st_ino
            header = UndoHeader(self._size, inode, os.fsencode(name), host, boot, locked).encode()
            write_all(fd, header)
        except BaseException:
            try:
                os.unlink(path)
            except OSError:
                pass
            finally:
                os.close(fd)
            raise
        self._undo, self._undo_path, self._undo_start = fd, path, len(header)

    def _save_old(self, start: int, length: int) -> None:
        """Keep the bytes ``[start, start + length)`` had at open (below the size at
        open, and not kept already), so a rollback can put them back."""
        end = min(start + length, self._size)
        if start >= end:
            return
        assert self._undo is not None
        for lo, hi in _missing(start, end, self._saved):
            self.file.flush()
            old = os.pread(self.file.fileno(), hi - lo, lo)
            # one unbuffered write, before the file's own (buffered) bytes go out: a
            # crash can cut the record short, never leave covered bytes unrecorded
            write_all(self._undo, record(lo, old))
            self._saved.append((lo, hi))
        self._saved.sort()

    def seek(self, offset: int, whence: int) -> int:
        with self._lock:
            self._check_position = self._in_place
            return self.file.seek(offset, whence)

    def commit(self) -> None:
        with self._lock:
            if self.partial is None:
                if self.durable and not self.file.closed:
                    self.file.flush()
                    os.fsync(self.file.fileno())
                self.file.close()
                self._drop_undo()
                return
            try:
                if self._checksums is not None:
                    self._attach_checksums()
                if self.durable:
                    # the bytes reach the disk before the name does: after a power
                    # loss the target is the old file or the whole new one
                    self.file.flush()
                    os.fsync(self.file.fileno())
                # closed before the rename: on NFS a write error may only show at
                # close, and then the target must stay as it was.  (Recovery could
                # take the partial in between only if it had gone unchanged for
                # stale_temporary_age: the rename then fails, cleanly.)
                self.file.close()
                if self._exclusive:
                    _link_into_place(self.partial, self.target)
                else:
                    localsums.forget(self.target)
                    os.replace(self.partial, self.target)
            except BaseException:
                self._discard_partial()
                raise
            self.partial = None
            if self.durable:
                _fsync_directory(self.target.parent)

    def _attach_checksums(self) -> None:
        checksums, self._checksums = self._checksums, None
        assert checksums is not None
        self.file.flush()  # the stamp is taken from the file as it will be renamed
        try:
            localsums.keep(self.file.fileno(), checksums, merge=False)
        except OSError:
            pass  # kept nowhere: answered by reading the file when asked

    def rollback(self) -> None:
        with self._lock:
            if self.partial is not None:
                self._discard_partial()
                return
            try:
                if not self.file.closed and self._floor is not None:
                    # nothing written stays: the old bytes go back where writes
                    # covered them, and the file ends where it ended at open
                    if self._undo is not None:
                        self._restore_old()
                    self.file.truncate(self._size)
            finally:
                self.file.close()
                self._drop_undo()

    def _restore_old(self) -> None:
        assert self._undo is not None
        self.file.flush()
        for offset, old in iter_records(self._undo, self._undo_start):
            write_all(self.file.fileno(), old, offset)

    def _drop_undo(self) -> None:
        undo, self._undo = self._undo, None
        if undo is not None:
            # unlinked before the lock goes with the descriptor: a journal that can
            # be locked is one whose writer stopped without finishing
            try:
                os.unlink(self._undo_path)
            except FileNotFoundError:
                pass
            finally:
                os.close(undo)

    def _discard_partial(self) -> None:
        try:
            self.file.close()
        finally:
            partial, self.partial = self.partial, None
            if partial is not None:
                try:
                    os.unlink(partial)
                except FileNotFoundError:
                    pass


def _missing(start: int, end: int, saved: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of ``[start, end)`` that no range in ``saved`` (sorted) covers."""
    gaps = []
    cursor = start
    for lo, hi in saved:
        if hi <= cursor:
            continue
        if lo >= end:
            break
        if lo > cursor:
            gaps.append((cursor, lo))
        cursor = max(cursor, hi)
        if cursor >= end:
            break
    if cursor < end:
        gaps.append((cursor, end))
    return gaps


def _exists(path: Path) -> bool:
    return os.path.exists(path) and not is_internal_name(os.path.basename(path))


def _is_dir(path: Path) -> bool:
    return os.path.isdir(path)


def _is_file(path: Path) -> bool:
    return os.path.isfile(path) and not is_internal_name(os.path.basename(path))


def _mkdir(path: Path, parents: bool, exist_ok: bool) -> None:
    Path(path).mkdir(parents=parents, exist_ok=exist_ok)


def _unlink(path: Path) -> None:
    localsums.forget(path)
    os.unlink(path)


def _replace(source: Path, destination: Path) -> None:
    localsums.forget(destination)
    os.replace(source, destination)


def _lstat_is_symlink(path: Path) -> bool:
    return os.path.islink(path)


def _realpath(path: Path) -> Path:
    return Path(os.path.realpath(path))


class _DirEntries(Protocol):
    """What ``os.scandir`` returns (its class is private): entries to iterate, then close."""

    def __iter__(self) -> Iterator[os.DirEntry[str]]: ...

    def __enter__(self) -> _DirEntries: ...

    def __exit__(self, *exc: object) -> None: ...

    def close(self) -> None: ...


def _open_scandir(path: Path) -> _DirEntries | None:
    try:
        return os.scandir(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _next_batch(entries: _DirEntries, size: int) -> list[str]:
    batch: list[str] = []
    for entry in entries:
        batch.append(entry.name)
        if len(batch) >= size:
            break
    return batch


#: Paths deeper than this are resolved in a worker thread, not on the event loop.
INLINE_REALPATH_DEPTH = 48


class PathIO(AbstractPathIO[Path]):
    """Local disk with blocking calls made inline: the fastest choice for local disks.

    ``timeout`` is accepted for compatibility but cannot apply: a call that never
    yields to the loop cannot be interrupted by it.
    """

    #: fsync an upload (and its directory) before it counts as stored; see DurablePathIO
    durable = False
    backend_name = "local"
    exclusive_create = True

    @universal_exception
    async def exists(self, path: Path) -> bool:
        return _exists(path)

    @universal_exception
    async def is_dir(self, path: Path) -> bool:
        return _is_dir(path)

    @universal_exception
    async def is_file(self, path: Path) -> bool:
        return _is_file(path)

    @universal_exception
    async def mkdir(self, path: Path, *, parents: bool = False, exist_ok: bool = False) -> None:
        _mkdir(path, parents, exist_ok)

    @universal_exception
    async def rmdir(self, path: Path) -> None:
        os.rmdir(path)

    @universal_exception
    async def unlink(self, path: Path) -> None:
        _refuse_internal(path)
        _unlink(path)

    @universal_exception
    def list(self, path: Path) -> AbstractAsyncLister:
        return AsyncLister(self._iterate(Path(path)), timeout=self.timeout)

    async def _iterate(self, path: Path) -> AsyncIterator[Path]:
        entries = _open_scandir(path)
        if entries is None:
            return
        with entries:
            for entry in entries:
                if not is_internal_name(entry.name):
                    yield path / entry.name

    @universal_exception
    async def stat(self, path: Path) -> os.stat_result:
        _refuse_internal(path)
        return os.stat(path)

    async def _open(self, path: Path, mode: str = "rb") -> _LocalFile:
        return _LocalFile(Path(path), mode, self.durable)

    @universal_exception
    async def seek(self, file: _LocalFile, offset: int, whence: int = io.SEEK_SET) -> int:
        check_handle(file)
        return file.seek(offset, whence)

    @universal_exception
    async def write(self, file: _LocalFile, data: bytes) -> None:
        check_handle(file)
        file.write(data)

    @universal_exception
    def write_now(self, file: _LocalFile, data: bytes | memoryview) -> None:
        """``write`` without the coroutine: this class writes on the event loop anyway,
        so a receiver can hand bytes over the moment they arrive."""
        check_handle(file)
        file.write(data)

    @universal_exception
    async def read(self, file: _LocalFile, block_size: int) -> bytes:
        check_handle(file)
        return file.read(block_size)

    @universal_exception
    async def close(self, file: _LocalFile) -> None:
        check_handle(file)
        if file.durable:
            await asyncio.to_thread(file.commit)  # fsync waits for the disk: off the loop
        else:
            file.commit()

    @universal_exception
    async def abort(self, file: _LocalFile) -> None:
        check_handle(file)
        file.rollback()

    @universal_exception
    async def rename(self, source: Path, destination: Path) -> None:
        _refuse_internal(source)
        _refuse_internal(destination)
        _replace(source, destination)

    @universal_exception
    async def realpath(self, path: Path) -> Path:
        # one lstat per component: cheap for real paths, but a client can build a
        # directory thousands deep, and that must not stall every other session
        if len(Path(path).parts) > INLINE_REALPATH_DEPTH:
            return await asyncio.to_thread(_realpath, path)
        return _realpath(path)

    @universal_exception
    async def lstat_is_symlink(self, path: Path) -> bool:
        return _lstat_is_symlink(path)

    # Optional capabilities (the FTP layer offers SITE CHMOD / MFMT only where
    # storage has them): permission bits and modification times.
    @universal_exception
    async def chmod(self, path: Path, mode: int) -> None:
        os.chmod(path, mode)

    @universal_exception
    async def set_mtime(self, path: Path, mtime: float) -> None:
        localsums.restamp(path, mtime)  # the checksums stay valid: the bytes did not change

    # Checksums (``backends.localsums``): an extended attribute, checked against the
    # file's size and modification time.
    @universal_exception
    async def stored_checksums(self, path: Path) -> Stored | None:
        if not moves_bytes_as(self, PathIO):
            return None
        _refuse_internal(path)
        return localsums.read_stored(path)

    @universal_exception
    async def keep_checksums(self, file: _LocalFile, values: Mapping[str, str]) -> None:
        check_handle(file)
        if moves_bytes_as(self, PathIO):
            file.keep_checksums(dict(values))


class DurablePathIO(PathIO):
    """``PathIO`` whose uploads are on disk before they are acknowledged.

    Each finished upload is fsynced, then renamed into place, then its directory is
    fsynced, all in a worker thread: a power loss right after the 226 leaves either
    the previous file or the complete new one, never an empty or partial file under
    the final name.  Costs one disk flush per file; ``gateway serve`` uses it.
    """

    durable = True


class AsyncPathIO(AbstractPathIO[Path]):
    """Local disk with every blocking call in an executor: for slow or network disks."""

    #: fsync an upload (and its directory) before it counts as stored
    durable = False
    backend_name = "local"
    exclusive_create = True

    def __init__(
        self,
        timeout: float | None = None,
        connection: Any = None,
        state: Any = None,
        *,
        executor: Executor | None = None,
    ) -> None:
        super().__init__(timeout=timeout, connection=connection, state=state)
        self.executor = executor

    def _run(self, func: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self.executor, functools.partial(func, *args))

    @universal_exception
    @with_timeout
    async def exists(self, path: Path) -> bool:
        return await self._run(_exists, path)

    @universal_exception
    @with_timeout
    async def is_dir(self, path: Path) -> bool:
        return await self._run(_is_dir, path)

    @universal_exception
    @with_timeout
    async def is_file(self, path: Path) -> bool:
        return await self._run(_is_file, path)

    @universal_exception
    @with_timeout
    async def mkdir(self, path: Path, *, parents: bool = False, exist_ok: bool = False) -> None:
        await self._run(_mkdir, path, parents, exist_ok)

    @universal_exception
    @with_timeout
    async def rmdir(self, path: Path) -> None:
        await self._run(os.rmdir, path)

    @universal_exception
    @with_timeout
    async def unlink(self, path: Path) -> None:
        _refuse_internal(path)
        await self._run(_unlink, path)

    @universal_exception
    def list(self, path: Path) -> AbstractAsyncLister:
        return AsyncLister(self._iterate(Path(path)), timeout=self.timeout)

    async def _iterate(self, path: Path) -> AsyncIterator[Path]:
        entries = await self._run(_open_scandir, path)
        if entries is None:
            return
        try:
            while batch := await self._run(_next_batch, entries, _LIST_BATCH):
                for name in batch:
                    if not is_internal_name(name):
                        yield path / name
        finally:
            entries.close()

    @universal_exception
    @with_timeout
    async def stat(self, path: Path) -> os.stat_result:
        _refuse_internal(path)
        return await self._run(os.stat, path)

    async def _open(self, path: Path, mode: str = "rb") -> _LocalFile:
        opening = self._run(_LocalFile, Path(path), mode, self.durable)
        try:
            return await asyncio.shield(opening)
        except asyncio.CancelledError:
            # The thread may still create the file (and a partial sibling): roll it
            # back once it exists instead of leaking it.
            opening.add_done_callback(self._discard_orphan)
            raise

    def _discard_orphan(self, opening: asyncio.Future[_LocalFile]) -> None:
        if not opening.cancelled() and opening.exception() is None:
            cleanup = self._run(opening.result().rollback)
            cleanup.add_done_callback(lambda done: done.cancelled() or done.exception())

    @universal_exception
    @with_timeout
    async def seek(self, file: _LocalFile, offset: int, whence: int = io.SEEK_SET) -> int:
        check_handle(file)
        return await self._run(file.seek, offset, whence)

    @universal_exception
    @with_timeout
    async def write(self, file: _LocalFile, data: bytes) -> None:
        check_handle(file)
        await self._run(file.write, data)

    @universal_exception
    @with_timeout
    async def read(self, file: _LocalFile, block_size: int) -> bytes:
        check_handle(file)
        return await self._run(file.read, block_size)

    @universal_exception
    @with_timeout
    async def close(self, file: _LocalFile) -> None:
        check_handle(file)
        await self._run(file.commit)

    @universal_exception
    @with_timeout
    async def abort(self, file: _LocalFile) -> None:
        check_handle(file)
        await self._run(file.rollback)

    @universal_exception
    @with_timeout
    async def rename(self, source: Path, destination: Path) -> None:
        _refuse_internal(source)
        _refuse_internal(destination)
        await self._run(_replace, source, destination)

    @universal_exception
    @with_timeout
    async def realpath(self, path: Path) -> Path:
        return await self._run(_realpath, path)

    @universal_exception
    @with_timeout
    async def lstat_is_symlink(self, path: Path) -> bool:
        return await self._run(_lstat_is_symlink, path)

    @universal_exception
    @with_timeout
    async def stored_checksums(self, path: Path) -> Stored | None:
        if not moves_bytes_as(self, AsyncPathIO):
            return None
        _refuse_internal(path)
        return await self._run(localsums.read_stored, path)

    @universal_exception
    @with_timeout
    async def keep_checksums(self, file: _LocalFile, values: Mapping[str, str]) -> None:
        check_handle(file)
        if moves_bytes_as(self, AsyncPathIO):
            await self._run(file.keep_checksums, dict(values))
