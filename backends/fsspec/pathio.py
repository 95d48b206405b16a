"""FsspecPathIO: the storage contract over any fsspec filesystem.

Every path is confined to the root first (``urls.confine``).  Directory rules
depend on the filesystem: one with real directories (local, memory, sftp...) is
asked directly; on an object store a directory exists when its marker object
(``dir/``) or any key below it exists, ``MKD`` writes the marker, and renaming a
directory copies every key below it then deletes the originals, as the native S3
backend does.
"""

from __future__ import annotations

import datetime
import errno
import os
import stat as stat_module
from collections.abc import AsyncIterator, Mapping
from pathlib import PurePosixPath
from typing import Any, NamedTuple

from ..base import (
    AbstractAsyncLister,
    AbstractPathIO,
    AsyncLister,
    HandleMethods,
    PathIONursery,
    universal_exception,
    with_timeout,
)
from ..local import partial_name
from .multipart import MultipartSink, supports_multipart
from .options import filesystem_class, split_options
from .reader import ChunkReader, FileObjectFetcher
from .store import FsspecStore
from .urls import confine, not_found, parse_root, root_path
from .writer import FileSink, Writer

__all__ = ("FsspecFactory", "FsspecPathIO", "FsspecStat")


class FsspecStat(NamedTuple):
    """The subset of ``os.stat_result`` the protocol reads."""

    st_size: int
    st_mtime: float
    st_ctime: float
    st_nlink: int
    st_mode: int


def _os_error(code: int, path: object, cls: type[OSError] = OSError) -> OSError:
    return cls(code, os.strerror(code), str(path))


def _timestamp(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.UTC)
        return value.timestamp()
    if isinstance(value, str):
        try:
            return _timestamp(datetime.datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def _mtime(info: Mapping[str, Any]) -> float:
    """Modification time under whichever name the filesystem reports it."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "modified", "created",
                "time_modified", "mtime_ns"):
        stamp = _timestamp(info.get(key))
        if stamp is not None:
            return stamp / 1e9 if key == "mtime_ns" else stamp
    return 0.0


def _is_dir_info(info: Mapping[str, Any]) -> bool:
    return info.get("type") == "directory"


def _stat_of(info: Mapping[str, Any]) -> FsspecStat:
    mtime = _mtime(info)
    if _is_dir_info(info):
        return FsspecStat(0, mtime, mtime, 2, stat_module.S_IFDIR | 0o755)
    return FsspecStat(int(info.get("size") or 0), mtime, mtime, 1, stat_module.S_IFREG | 0o644)


def _dir_stat() -> FsspecStat:
    return FsspecStat(0, 0.0, 0.0, 2, stat_module.S_IFDIR | 0o755)


class FsspecFactory(PathIONursery):
    """The path-io factory of one root; ``aclose()`` closes its filesystem."""

    def __init__(self, store: FsspecStore) -> None:
        super().__init__(FsspecPathIO)
        self.state = store

    async def aclose(self) -> None:
        await self.state.aclose()


class FsspecPathIO(HandleMethods, AbstractPathIO[PurePosixPath]):
    """Files and directories of one fsspec filesystem, below one root."""

    #: what monitoring calls this storage (metrics labels)
    backend_name = "fsspec"
    writer_type = Writer

    def __init__(self, timeout: float | None = None, connection: Any = None,
                 state: FsspecStore | None = None) -> None:
        super().__init__(timeout=timeout, connection=connection, state=state)
        if state is None:
            # aioftp-style construction without a root: fsspec's memory filesystem
            state = FsspecPathIO.from_root("fsspec+memory://")[0].state
        self._store: FsspecStore = state
        # stats of the entries being listed: the protocol stats each one it lists
        self._listed: dict[PurePosixPath, FsspecStat] = {}

    @property
    def state(self) -> FsspecStore:
        return self._store

    def __repr__(self) -> str:
        return f"FsspecPathIO(timeout={self.timeout!r}, store={self._store!r})"

    @classmethod
    def from_root(cls, url: str, options: Mapping[str, Any] | None = None
                  ) -> tuple[FsspecFactory, PurePosixPath]:
        """``fsspec+<protocol>://...`` (or an unclaimed scheme) -> (factory, root).

        Everything that can fail without I/O fails here: an unknown protocol, a
        missing optional package (``BackendNotInstalled``), bad options.  The
        filesystem itself is created on first use, inside the server's loop.
        """
        protocol, fs_url = parse_root(url)
        fs_class = filesystem_class(protocol)
        settings, kwargs = split_options(protocol, options)
        from_url = fs_class._get_kwargs_from_urls(fs_url) or {}
        kwargs = {**from_url, **kwargs}
        stripped = fs_class._strip_protocol(fs_url)
        if stripped.startswith(protocol + ":"):
            # a class registered under a second name may only know its first one
            stripped = fs_class._strip_protocol(fs_url.split("://", 1)[1])
        root = root_path(stripped)
        store = FsspecStore(fs_class, kwargs, settings, protocol, root)
        if store.dir_markers and root == PurePosixPath("/"):
            raise ValueError(f"an object-store root needs a bucket or container: {url!r}")
        return FsspecFactory(store), root

    async def aclose(self) -> None:
        await self._store.aclose()

    # -- helpers -------------------------------------------------------------------------

    def _locate(self, path: PurePosixPath) -> PurePosixPath:
        return confine(path, self._store.root)

    async def _call(self, name: str, path: PurePosixPath, *args: Any, **kwargs: Any) -> Any:
        return await self._store.call(name, self._store.fs_path(path), *args, where=path, **kwargs)

    async def _info(self, path: PurePosixPath) -> dict[str, Any] | None:
        """The filesystem's info for ``path``, None when nothing is there."""
        if path == self._store.root:
            return {"type": "directory", "name": str(path)}
        try:
            info = await self._call("info", path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if self._store.dir_markers and not _is_dir_info(info):
            # a key "dir/" asked for as "dir" must not pass for a file
            if str(info.get("name", "")).endswith("/"):
                info = dict(info, type="directory")
        return info

    async def _is_dir(self, path: PurePosixPath) -> bool:
        info = await self._info(path)
        return info is not None and _is_dir_info(info)

    async def _require_parent_dir(self, path: PurePosixPath) -> None:
        parent = path.parent
        if parent == self._store.root:
            return
        info = await self._info(parent)
        if info is None:
            raise _os_error(errno.ENOENT, path, FileNotFoundError)
        if not _is_dir_info(info):
            raise _os_error(errno.ENOTDIR, path, NotADirectoryError)

    async def _entries(self, path: PurePosixPath) -> list[tuple[PurePosixPath, dict[str, Any]]]:
        """Children of a directory as (path, info); markers and the path itself left out."""
        try:
            listed = await self._call("ls", path, detail=True)
        except (FileNotFoundError, NotADirectoryError):
            return []
        entries: dict[PurePosixPath, dict[str, Any]] = {}
        for info in listed:
            name = str(info.get("name", "")).rstrip("/").rsplit("/", 1)[-1]
            if not name or name in (".", ".."):
                continue
            child = path / name
            own = str(info.get("name", "")).rstrip("/")
            if own and self._store.fs_path(path).rstrip("/") == own:
                continue  # the directory's marker, or a file listing itself
            if child in entries and _is_dir_info(entries[child]):
                continue  # a marker and a prefix of the same name: one directory
            entries[child] = info
        return list(entries.items())

    # -- queries -------------------------------------------------------------------------

    @universal_exception
    @with_timeout
    async def exists(self, path: PurePosixPath) -> bool:
        return await self._info(self._locate(path)) is not None

    @universal_exception
    @with_timeout
    async def is_dir(self, path: PurePosixPath) -> bool:
        return await self._is_dir(self._locate(path))

    @universal_exception
    @with_timeout
    async def is_file(self, path: PurePosixPath) -> bool:
        info = await self._info(self._locate(path))
        return info is not None and not _is_dir_info(info)

    @universal_exception
    @with_timeout
    async def stat(self, path: PurePosixPath) -> FsspecStat:
        path = self._locate(path)
        listed = self._listed.pop(path, None)
        if listed is not None:
            return listed
        if path == self._store.root:
            return _dir_stat()
        info = await self._info(path)
        if info is None:
            raise not_found(path)
        return _stat_of(info)

    @universal_exception
    def list(self, path: PurePosixPath) -> AbstractAsyncLister:
        return AsyncLister(self._iterate(self._locate(path)), timeout=self.timeout)

    async def _iterate(self, path: PurePosixPath) -> AsyncIterator[PurePosixPath]:
        entries = await self._entries(path)
        self._listed = {child: _stat_of(info) for child, info in entries}
        try:
            for child, _ in entries:
                yield child
        finally:
            self._listed = {}

    @universal_exception
    async def realpath(self, path: PurePosixPath) -> PurePosixPath:
        path = self._locate(path)
        if self._store.protocol in ("file", "local"):
            resolved = await self._store.in_thread(os.path.realpath, str(path))
            return PurePosixPath(resolved)
        return path

    @universal_exception
    async def lstat_is_symlink(self, path: PurePosixPath) -> bool:
        path = self._locate(path)
        if self._store.protocol in ("file", "local"):
            return await self._store.in_thread(os.path.islink, str(path))
        return False

    # -- changes -------------------------------------------------------------------------

    @universal_exception
    @with_timeout
    async def mkdir(self, path: PurePosixPath, *, parents: bool = False,
                    exist_ok: bool = False) -> None:
        path = self._locate(path)
        info = await self._info(path)
        if info is not None:
            if exist_ok and _is_dir_info(info):
                return
            raise _os_error(errno.EEXIST, path, FileExistsError)
        try:
            await self._require_parent_dir(path)
        except FileNotFoundError:
            if not parents:
                raise
            await self.mkdir(path.parent, parents=True, exist_ok=True)
        if self._store.dir_markers:
            await self._store.call("pipe_file", self._store.fs_path(path) + "/", b"", where=path)
        else:
            await self._call("mkdir", path, create_parents=False)

    @universal_exception
    @with_timeout
    async def rmdir(self, path: PurePosixPath) -> None:
        path = self._locate(path)
        if path == self._store.root:
            raise _os_error(errno.EBUSY, path)
        info = await self._info(path)
        if info is None:
            raise not_found(path)
        if not _is_dir_info(info):
            raise _os_error(errno.ENOTDIR, path, NotADirectoryError)
        if await self._entries(path):
            raise _os_error(errno.ENOTEMPTY, path)
        if self._store.dir_markers:
            await self._remove_marker(path)
        else:
            await self._call("rmdir", path)

    async def _remove_marker(self, path: PurePosixPath) -> None:
        try:
            await self._store.call("rm_file", self._store.fs_path(path) + "/", where=path)
        except FileNotFoundError:
            pass

    @universal_exception
    @with_timeout
    async def unlink(self, path: PurePosixPath) -> None:
        path = self._locate(path)
        info = await self._info(path)
        if info is None:
            raise not_found(path)
        if _is_dir_info(info):
            raise _os_error(errno.EISDIR, path, IsADirectoryError)
        await self._call("rm_file", path)

    @universal_exception
    @with_timeout
    async def rename(self, source: PurePosixPath, destination: PurePosixPath) -> None:
        source, destination = self._locate(source), self._locate(destination)
        for path in (source, destination):
            if path == self._store.root:
                raise _os_error(errno.EBUSY, path)
        if source == destination:
            return
        if source in destination.parents:
            raise _os_error(errno.EINVAL, destination)
        info = await self._info(source)
        if info is None:
            raise not_found(source)
        await self._require_parent_dir(destination)
        target = await self._info(destination)
        if target is not None and _is_dir_info(target) != _is_dir_info(info):
            code = errno.EISDIR if _is_dir_info(target) else errno.ENOTDIR
            raise _os_error(code, destination)
        if not self._store.dir_markers:
            if target is not None and _is_dir_info(target):
                # replace an empty directory as rename(2) does, never move inside it
                await self.rmdir(destination)
            await self._store.call("mv", self._store.fs_path(source),
                                   self._store.fs_path(destination), recursive=True,
                                   where=source)
            return
        if _is_dir_info(info):
            await self._move_tree(source, destination)
        else:
            await self._move_file(source, destination)

    async def _move_file(self, source: PurePosixPath, destination: PurePosixPath) -> None:
        store = self._store
        await store.call("cp_file", store.fs_path(source), store.fs_path(destination), where=source)
        await store.call("rm_file", store.fs_path(source), where=source)

    async def _move_tree(self, source: PurePosixPath, destination: PurePosixPath) -> None:
        """Copy every key below ``source``, then delete: a failure leaves duplicates, never a loss."""
        store = self._store
        found = await store.call("find", store.fs_path(source), withdirs=True, detail=True,
                                 where=source)
        files: list[str] = []
        folders: list[str] = []
        for name, entry in found.items():
            below = name.rstrip("/")[len(store.fs_path(source).rstrip("/")):].lstrip("/")
            if not below:
                continue
            target = store.fs_path(destination) + "/" + below
            if _is_dir_info(entry) or name.endswith("/"):
                folders.append(name.rstrip("/"))
                await store.call("pipe_file", target + "/", b"", where=destination)
            else:
                files.append(name)
                await store.call("cp_file", name, target, where=source)
        await store.call("pipe_file", store.fs_path(destination) + "/", b"", where=destination)
        for name in files:
            await store.call("rm_file", name, where=source)
        for name in sorted(folders, key=lambda text: -text.count("/")):
            try:
                await store.call("rm_file", name + "/", where=source)
            except FileNotFoundError:
                pass
        await self._remove_marker(source)

    # -- files -----------------------------------------------------------------------------

    async def _open(self, path: PurePosixPath, mode: str = "rb") -> ChunkReader | Writer:
        chars = set(mode)
        kinds = chars & {"r", "w", "a"}
        if "b" not in chars or len(kinds) != 1 or chars - {"r", "w", "a", "b", "+"}:
            raise ValueError(f"unsupported mode {mode!r}; expected rb, wb, ab or r+b")
        kind = kinds.pop()
        path = self._locate(path)
        if path == self._store.root:
            raise _os_error(errno.EISDIR, path, IsADirectoryError)
        info = await self._info(path)
        if info is not None and _is_dir_info(info):
            raise _os_error(errno.EISDIR, path, IsADirectoryError)
        if kind == "r" and info is None:
            raise not_found(path)
        if kind == "r" and "+" not in chars:
            return await self._reader(path, int(info.get("size") or 0))  # type: ignore[union-attr]
        if info is None:
            await self._require_parent_dir(path)
        base_size = int(info.get("size") or 0) if info is not None and kind != "w" else 0
        reader = await self._reader(path, base_size) if base_size else None
        try:
            sink = await self._sink(path)
        except BaseException:
            if reader is not None:
                await reader.close()
            raise
        writer_mode = {"r": "r+", "w": "w", "a": "a"}[kind]
        return Writer(sink, mode=writer_mode, base_size=base_size,
                      read_base=_ranged(reader) if reader is not None else None,
                      on_finish=reader.close if reader is not None else None)

    async def _reader(self, path: PurePosixPath, size: int) -> ChunkReader:
        store = self._store
        settings = store.settings
        fs_path = store.fs_path(path)
        if store.is_async and hasattr(await store.filesystem(), "_cat_file"):
            async def fetch(start: int, length: int) -> bytes:
                return await store.call("cat_file", fs_path, start=start, end=start + length,
                                        where=path)

            return ChunkReader(fetch, size, chunk_size=settings.chunk_size,
                               readahead=settings.readahead)
        fs = await store.filesystem()
        file = await store.in_thread(fs.open, fs_path, "rb")
        fetcher = FileObjectFetcher(file, store.in_thread)
        return ChunkReader(fetcher, size, chunk_size=settings.chunk_size,
                           readahead=settings.readahead, on_close=fetcher.close,
                           raw_file=fetcher.raw_file)

    async def _sink(self, path: PurePosixPath) -> Any:
        store = self._store
        fs = await store.filesystem()
        if store.is_async and supports_multipart(fs):
            return MultipartSink(fs, store.fs_path(path), store.settings.part_size,
                                 store.settings.parts_in_flight, store.spawn)
        partial = path.parent / partial_name(path.name)
        file = await store.in_thread(fs.open, store.fs_path(partial), "wb")

        async def finish() -> None:
            if store.dir_markers:
                await self._move_file(partial, path)
            else:
                await store.call("mv", store.fs_path(partial), store.fs_path(path), where=path)

        async def discard() -> None:
            try:
                await store.call("rm_file", store.fs_path(partial), where=path)
            except FileNotFoundError:
                pass

        return FileSink(file, store.in_thread, store.settings.write_chunk, finish, discard,
                        store.spawn)



def _ranged(reader: ChunkReader) -> Any:
    """Read ``length`` bytes at ``start`` of the old content (for append and resume)."""

    async def read(start: int, length: int) -> bytes:
        reader.seek(start)
        return await reader.read(length)

    return read
