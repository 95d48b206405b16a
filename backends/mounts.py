"""One tree made of several stores: each mounted at a virtual path.

An operator composes a user's tree from folders: ``/`` on ``s3://bucket/alice``,
``/shared`` on ``s3://bucket/shared`` (read-only), ``/archive`` on local disk.  A
:class:`MountedPathIO` answers the storage contract for that tree by sending each
operation to the store whose mount path is the longest prefix of the path, with the
path translated to that store's real root.

What the composition adds to the stores' own behaviour:

* mount points (and the names leading to one) are directories, listed in their
  parent even when the parent's store has no such directory;
* a mount point cannot be removed or renamed, and nothing may replace it;
* a read-only mount refuses every change with ``PermissionError``;
* a rename between mounts moves a file as a streamed copy (the destination's own
  transactional write: nothing visible before it is complete) followed by a delete
  of the source; a directory is refused with ``OSError(EXDEV)``.

The per-session cost is one small object: the stores of a tree are resolved once
per :class:`MountTable` (shared by the sessions of the tree) and a session's own
path I/O for a store is made on its first use.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import stat as stat_module
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath, PurePosixPath
from typing import Any, NamedTuple

from .base import (
    AbstractAsyncLister,
    AbstractPathIO,
    AsyncLister,
    AsyncPathIOContext,
    PathIONursery,
    check_handle,
    universal_exception,
)
from .checksums import Stored
from .errors import PathEscapesRoot, PathIOError
from .paths import absolute_parts
from .registry import _file_url_path, backend_for_root, options_for_root

__all__ = (
    "CROSS_FOLDER_DIRECTORY",
    "Mount",
    "MountInfo",
    "MountStat",
    "MountTable",
    "MountedPathIO",
    "normalize_mount_path",
    "shared_table",
)

#: Bytes read per step when a file moves between stores (memory stays bounded).
COPY_BLOCK_SIZE = 1 << 20

#: What a rename of a directory between folders is answered with.
CROSS_FOLDER_DIRECTORY = "moves of directories between folders are not supported"

Factory = Callable[..., AbstractPathIO[Any]]
#: A mount -> (path I/O factory, the store's real root); the server passes one
#: that shares its backends (connection pools, the memory tree) between users.
Resolver = Callable[["Mount"], tuple[Factory, PurePath]]


def normalize_mount_path(path: str | PurePosixPath) -> str:
    """The absolute, normalized form of a mount path; ``ValueError`` for a bad one."""
    text = str(path)
    if not text.startswith("/"):
        raise ValueError(f"mount path {text!r} must be absolute (start with /)")
    if any(ord(c) < 32 or c == "\x7f" for c in text):
        raise ValueError(f"mount path {text!r} has control characters")
    if any(part in (".", "..") for part in text.split("/")):
        raise ValueError(f"mount path {text!r} may not contain '.' or '..'")
    return str(PurePosixPath(text))


@dataclass(frozen=True)
class Mount:
    """A folder at a virtual path of one user's tree.

    ``folder`` is the folder's name (None for the account's own root), ``root`` its
    storage root (a local path or a URL, as a user's root), ``options`` its storage
    options (merged over the server's), ``read_only`` refuses every change below
    ``path``.
    """

    path: str
    folder: str | None
    root: str
    #: not in the repr: options hold credentials, and reprs end up in logs
    options: Mapping[str, Any] = field(default_factory=dict, hash=False, repr=False)
    read_only: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", normalize_mount_path(self.path))
        if not isinstance(self.root, str) or not self.root:
            raise ValueError(f"mount {self.path}: a storage root is required")


class MountInfo(NamedTuple):
    """Which folder a path is in (for quotas, logs): its name, mount path, read-only."""

    folder: str | None
    path: PurePosixPath
    read_only: bool


class MountStat(NamedTuple):
    """The stat of a directory that exists only because a mount is at or below it."""

    st_size: int
    st_mtime: float
    st_ctime: float
    st_nlink: int
    st_mode: int


def default_resolver(mount: Mount) -> tuple[Factory, PurePath]:
    """The registry's choice of backend for a mount's root (no shared server cache)."""
    return backend_for_root(mount.root, dict(mount.options) if mount.options else None)


def _is_local(root: str) -> bool:
    return "://" not in root or root.lower().startswith("file://")


def _made_on_first_use(root: str) -> bool:
    """Stores whose root directory must exist to hold files: local disk and memory
    (object stores have no directories to make)."""
    return _is_local(root) or root.lower().startswith("memory://")


class _Slot:
    """A mount in a table: its parts and, once resolved, its store."""

    __slots__ = ("index", "mount", "parts", "factory", "real_root", "root_real", "root_made")

    def __init__(self, index: int, mount: Mount) -> None:
        self.index = index
        self.mount = mount
        self.parts: tuple[str, ...] = tuple(absolute_parts(mount.path)[1])
        self.factory: Factory | None = None
        self.real_root: PurePath | None = None
        #: the real root as its store resolves it (symlinks), for confinement
        self.root_real: PurePath | None = None
        self.root_made = False


class MountTable:
    """The mounts of one tree and their stores: shared by every session of the tree.

    A mount at ``/`` is required (the account's own root).  Mount paths are unique.
    """

    def __init__(self, mounts: Iterable[Mount], resolve: Resolver | None = None) -> None:
        slots: dict[tuple[str, ...], _Slot] = {}
        for mount in mounts:
            slot = _Slot(len(slots), mount)
            if slot.parts in slots:
                raise ValueError(f"two mounts at {mount.path}")
            slots[slot.parts] = slot
        if () not in slots:
            raise ValueError("a mount at / is required")
        self._by_parts = slots
        self._resolve = resolve or default_resolver
        #: directory parts -> names below it that lead to a mount
        self._below: dict[tuple[str, ...], set[str]] = {}
        for parts in slots:
            for depth in range(len(parts)):
                self._below.setdefault(parts[:depth], set()).add(parts[depth])
        self.created = time.time()

    @property
    def mounts(self) -> tuple[Mount, ...]:
        return tuple(slot.mount for slot in self._by_parts.values())

    def path_io(self, timeout: float | None = None, connection: Any = None) -> MountedPathIO:
        """A path I/O for one session over this table."""
        return MountedPathIO(timeout=timeout, connection=connection, state=self)

    # -- lookups (pure) ---------------------------------------------------------------------
    def owner(self, parts: list[str] | tuple[str, ...]) -> _Slot:
        """The mount with the longest path that is a prefix of ``parts``."""
        for depth in range(len(parts), -1, -1):
            slot = self._by_parts.get(tuple(parts[:depth]))
            if slot is not None:
                return slot
        raise AssertionError("the table has a mount at /")

    def is_mount_point(self, parts: list[str] | tuple[str, ...]) -> bool:
        return tuple(parts) in self._by_parts

    def leads_to_mount(self, parts: list[str] | tuple[str, ...]) -> bool:
        """A mount point, or a directory with a mount somewhere below it."""
        key = tuple(parts)
        return key in self._by_parts or key in self._below

    def names_below(self, parts: list[str] | tuple[str, ...]) -> set[str]:
        return self._below.get(tuple(parts), set())

    # -- stores -----------------------------------------------------------------------------
    def store(self, slot: _Slot) -> tuple[Factory, PurePath]:
        if slot.factory is None or slot.real_root is None:
            factory, real_root = self._resolve(slot.mount)
            slot.factory, slot.real_root = factory, real_root
        return slot.factory, slot.real_root


def _virtual(path: PurePath | str) -> tuple[PurePosixPath, list[str]]:
    virtual, parts = absolute_parts(path)
    return PurePosixPath("/", *parts), parts


def _error(cls: type[OSError], code: int, text: str, path: object) -> OSError:
    return cls(code, text, str(path))


class _Opened:
    """A file opened in one of the stores: what ``_open`` hands to read/write/close."""

    __slots__ = ("context",)

    def __init__(self, context: AsyncPathIOContext) -> None:
        self.context = context

    @property
    def raw_file(self) -> Any:
        """The store's OS-level file, so a download from local disk stays zero-copy."""
        return self.context.raw_file


class MountedPathIO(AbstractPathIO[PurePosixPath]):
    """The storage contract over a :class:`MountTable` (paths are the tree's paths)."""

    backend_name = "mounts"
    #: "xb" is the store's where it has it, else a plain "wb" (see ``_open``)
    exclusive_create = True

    def __init__(
        self,
        timeout: float | None = None,
        connection: Any = None,
        state: MountTable | None = None,
    ) -> None:
        super().__init__(timeout=timeout, connection=connection, state=state)
        if state is None:
            raise TypeError("MountedPathIO needs a MountTable (state=...)")
        self._table = state
        self._children: dict[int, AbstractPathIO[Any]] = {}

    @property
    def state(self) -> MountTable:
        return self._table

    def __repr__(self) -> str:
        paths = ", ".join(mount.path for mount in self._table.mounts)
        return f"MountedPathIO(timeout={self.timeout!r}, mounts=[{paths}])"

    # -- routing ----------------------------------------------------------------------------
    def mount_of(self, path: PurePath | str) -> MountInfo | None:
        """The folder ``path`` is in, or None when it is in the account's own root."""
        _, parts = _virtual(path)
        mount = self._table.owner(parts).mount
        if mount.folder is None:
            return None
        return MountInfo(mount.folder, PurePosixPath(mount.path), mount.read_only)

    def storage_key(self, path: PurePath | str) -> tuple[str, int, str]:
        """Which file ``path`` is, across every tree mounting the same folder: the
        folder's store (its kind and shared state) and the real path in it.  Two
        accounts writing one shared file through their own trees get the same key."""
        _, parts = _virtual(path)
        slot = self._table.owner(parts)
        child, real_root = self._child(slot)
        relative = parts[len(slot.parts) :]
        real = real_root.joinpath(*relative) if relative else real_root
        return (type(child).__qualname__, id(child.state), str(real))

    def _child(self, slot: _Slot) -> tuple[AbstractPathIO[Any], PurePath]:
        factory, real_root = self._table.store(slot)
        child = self._children.get(slot.index)
        if child is None:
            child = self._children[slot.index] = factory(timeout=self.timeout, connection=self.connection)
        return child, real_root

    async def _route(self, parts: list[str]) -> tuple[_Slot, AbstractPathIO[Any], PurePath]:
        """(mount, its store, the real path in it) for a path's parts."""
        slot = self._table.owner(parts)
        child, real_root = self._child(slot)
        if not slot.root_made and _made_on_first_use(slot.mount.root):
            # a folder that does not exist yet is made on first use, as an account's
            # local root is at its first login
            slot.root_made = True
            with contextlib.suppress(PathIOError):
                if not await child.exists(real_root):
                    await child.mkdir(real_root, parents=True, exist_ok=True)
        relative = parts[len(slot.parts) :]
        return slot, child, real_root.joinpath(*relative) if relative else real_root

    def _writable(self, slot: _Slot, path: object) -> None:
        if slot.mount.read_only:
            raise _error(PermissionError, errno.EROFS, "read-only folder", path)

    def _not_a_mount(self, parts: list[str], path: object) -> None:
        if self._table.leads_to_mount(parts):
            raise _error(PermissionError, errno.EBUSY, "a folder's mount point cannot be changed", path)

    # -- queries ----------------------------------------------------------------------------
    @universal_exception
    async def exists(self, path: PurePosixPath) -> bool:
        _, parts = _virtual(path)
        if self._table.leads_to_mount(parts):
            return True
        _, child, real = await self._route(parts)
        return bool(await child.exists(real))

    @universal_exception
    async def is_dir(self, path: PurePosixPath) -> bool:
        _, parts = _virtual(path)
        if self._table.leads_to_mount(parts):
            return True
        _, child, real = await self._route(parts)
        return bool(await child.is_dir(real))

    @universal_exception
    async def is_file(self, path: PurePosixPath) -> bool:
        _, parts = _virtual(path)
        if self._table.leads_to_mount(parts):
            return False
        _, child, real = await self._route(parts)
        return bool(await child.is_file(real))

    @universal_exception
    async def stat(self, path: PurePosixPath) -> Any:
        _, parts = _virtual(path)
        slot, child, real = await self._route(parts)
        if not self._table.leads_to_mount(parts):
            return await child.stat(real)
        try:
            stats = await child.stat(real)
        except PathIOError as exc:
            if not isinstance(exc.cause, (FileNotFoundError, NotADirectoryError)):
                raise
        else:
            if stat_module.S_ISDIR(getattr(stats, "st_mode", 0)):
                return stats
        mode = 0o555 if slot.mount.read_only and self._table.is_mount_point(parts) else 0o755
        created = self._table.created
        return MountStat(0, created, created, 2, stat_module.S_IFDIR | mode)

    @universal_exception
    def list(self, path: PurePosixPath) -> AbstractAsyncLister:
        return AsyncLister(self._iterate(path), timeout=self.timeout)

    async def _iterate(self, path: PurePosixPath) -> AsyncIterator[PurePosixPath]:
        virtual, parts = _virtual(path)
        mounted = self._table.names_below(parts)
        _, child, real = await self._route(parts)
        async for entry in child.list(real):
            name = PurePath(entry).name
            if name not in mounted:  # a mount hides what its parent's store has there
                yield virtual / name
        for name in sorted(mounted):
            yield virtual / name

    @universal_exception
    async def realpath(self, path: PurePosixPath) -> PurePosixPath:
        virtual, parts = _virtual(path)
        if self._table.leads_to_mount(parts):
            return virtual
        slot, child, real = await self._route(parts)
        if slot.root_real is None:
            slot.root_real = await child.realpath(self._table.store(slot)[1])
        resolved = await child.realpath(real)
        try:
            relative = PurePath(resolved).relative_to(slot.root_real)
        except ValueError:
            raise PathEscapesRoot(str(path)) from None
        return PurePosixPath(slot.mount.path, *relative.parts)

    @universal_exception
    async def lstat_is_symlink(self, path: PurePosixPath) -> bool:
        _, parts = _virtual(path)
        if self._table.leads_to_mount(parts):
            return False
        _, child, real = await self._route(parts)
        return bool(await child.lstat_is_symlink(real))

    @universal_exception
    async def stored_checksums(self, path: PurePosixPath) -> Stored | None:
        _, parts = _virtual(path)
        if self._table.leads_to_mount(parts):
            raise _error(IsADirectoryError, errno.EISDIR, os.strerror(errno.EISDIR), path)
        _, child, real = await self._route(parts)
        lookup = getattr(child, "stored_checksums", None)
        return None if lookup is None else await lookup(real)

    # -- changes ----------------------------------------------------------------------------
    @universal_exception
    async def mkdir(self, path: PurePosixPath, *, parents: bool = False, exist_ok: bool = False) -> None:
        _, parts = _virtual(path)
        if self._table.leads_to_mount(parts):
            if exist_ok:
                return
            raise _error(FileExistsError, errno.EEXIST, os.strerror(errno.EEXIST), path)
        slot, child, real = await self._route(parts)
        self._writable(slot, path)
        await child.mkdir(real, parents=parents, exist_ok=exist_ok)

    @universal_exception
    async def rmdir(self, path: PurePosixPath) -> None:
        _, parts = _virtual(path)
        self._not_a_mount(parts, path)
        slot, child, real = await self._route(parts)
        self._writable(slot, path)
        await child.rmdir(real)

    @universal_exception
    async def unlink(self, path: PurePosixPath) -> None:
        _, parts = _virtual(path)
        self._not_a_mount(parts, path)
        slot, child, real = await self._route(parts)
        self._writable(slot, path)
        await child.unlink(real)

    @universal_exception
    async def rename(self, source: PurePosixPath, destination: PurePosixPath) -> None:
        _, source_parts = _virtual(source)
        _, target_parts = _virtual(destination)
        self._not_a_mount(source_parts, source)
        self._not_a_mount(target_parts, destination)
        source_slot, source_child, source_real = await self._route(source_parts)
        target_slot, target_child, target_real = await self._route(target_parts)
        self._writable(source_slot, source)
        self._writable(target_slot, destination)
        if source_slot is target_slot:
            await source_child.rename(source_real, target_real)
            return
        stats = await source_child.stat(source_real)
        if stat_module.S_ISDIR(getattr(stats, "st_mode", 0)):
            raise _error(OSError, errno.EXDEV, CROSS_FOLDER_DIRECTORY, source)
        if self._table.store(source_slot)[0] is self._table.store(target_slot)[0]:
            # both folders in one store (one disk, the memory tree): its own rename,
            # unless the store says the two places are on different devices
            try:
                await source_child.rename(source_real, target_real)
                return
            except PathIOError as exc:
                cause = exc.cause
                if not (isinstance(cause, OSError) and cause.errno == errno.EXDEV):
                    raise
        await _move_file(source_child, source_real, target_child, target_real)

    # -- files ------------------------------------------------------------------------------
    async def _open(self, path: PurePosixPath, mode: str = "rb") -> _Opened:
        _, parts = _virtual(path)
        if self._table.leads_to_mount(parts):
            raise _error(IsADirectoryError, errno.EISDIR, os.strerror(errno.EISDIR), path)
        slot, child, real = await self._route(parts)
        if set(mode) & {"w", "a", "x", "+"}:
            self._writable(slot, path)
        if "x" in mode and not getattr(child, "exclusive_create", False):
            # a store that cannot refuse a name taken meanwhile (fsspec): a plain write
            mode = mode.replace("x", "w")
        return _Opened(await child.open(real, mode))

    @universal_exception
    async def seek(self, file: _Opened, offset: int, whence: int = io.SEEK_SET) -> int:
        check_handle(file)
        return await file.context.seek(offset, whence)

    @universal_exception
    async def write(self, file: _Opened, data: bytes) -> None:
        check_handle(file)
        await file.context.write(data)

    @universal_exception
    async def read(self, file: _Opened, block_size: int) -> bytes:
        check_handle(file)
        return await file.context.read(block_size)

    @universal_exception
    async def close(self, file: _Opened) -> None:
        check_handle(file)
        await file.context.close()

    @universal_exception
    async def abort(self, file: _Opened) -> None:
        check_handle(file)
        await file.context.abort()

    @universal_exception
    async def keep_checksums(self, file: _Opened, values: Mapping[str, str]) -> None:
        check_handle(file)
        await file.context.keep_checksums(values)

    # -- optional capabilities (the store's, where it has them) -----------------------------
    @universal_exception
    async def chmod(self, path: PurePosixPath, mode: int) -> None:
        await self._metadata(path, "chmod", mode)

    @universal_exception
    async def set_mtime(self, path: PurePosixPath, mtime: float) -> None:
        await self._metadata(path, "set_mtime", mtime)

    async def _metadata(self, path: PurePosixPath, name: str, value: Any) -> None:
        _, parts = _virtual(path)
        self._not_a_mount(parts, path)
        slot, child, real = await self._route(parts)
        self._writable(slot, path)
        method = getattr(child, name, None)
        if method is None:
            raise _error(OSError, errno.ENOTSUP, "not supported by this folder's storage", path)
        await method(real, value)


async def _move_file(
    source: AbstractPathIO[Any], source_real: PurePath,
    target: AbstractPathIO[Any], target_real: PurePath,
) -> None:
    """Copy a file between stores, then delete the source.

    The destination is written through its store's transactional write: a failure
    (or cancellation) while copying aborts it, so nothing appears there and the
    source stays.  If the source cannot be deleted afterwards, the copy is removed
    again, so the move fails as a whole.
    """
    async with source.open(source_real, "rb") as reader:
        writer = await target.open(target_real, "wb")
        try:
            while data := await reader.read(COPY_BLOCK_SIZE):
                await writer.write(data)
        except BaseException:
            await writer.abort()
            raise
        await writer.close()
    try:
        await source.unlink(source_real)
    except BaseException:
        with contextlib.suppress(Exception):
            await target.unlink(target_real)
        raise


def local_root(root: str) -> Path:
    """The directory a local mount root names (a path or a ``file://`` URL)."""
    if root.lower().startswith("file://"):
        return _file_url_path(root)
    return Path(root)


def _options_key(options: Mapping[str, Any]) -> str:
    return json.dumps(dict(options), sort_keys=True, default=str)


def shared_table(
    root: str | PurePath,
    mounts: Iterable[Mount],
    *,
    local_factory: Factory,
    shared: dict[str, tuple[Any, Any]],
    options: Mapping[str, Any] | None = None,
) -> MountTable:
    """The table of a tree (``root`` at ``/`` unless a mount is there, and ``mounts``),
    made once per distinct tree and kept in ``shared``.

    ``shared`` is where a server keeps its stores by root (``(factory, real root)``):
    a folder's store is the one any user rooted there gets, so the memory tree and the
    S3 connection pools are shared.  Local roots use ``local_factory`` (the server's
    own, durable or not).  ``options`` are the server's storage options; a folder's own
    are merged over them (and such a folder gets a store of its own).
    """
    tree = list(mounts)
    if not any(mount.path == "/" for mount in tree):
        tree.insert(0, Mount("/", None, str(root)))
    described = [(m.path, m.folder, m.root, _options_key(m.options), m.read_only) for m in tree]
    key = "mounts " + hashlib.sha256(json.dumps([str(root), described]).encode()).hexdigest()
    entry = shared.get(key)
    if entry is not None:
        table: MountTable = entry[0]
        return table

    def resolve(mount: Mount) -> tuple[Factory, PurePath]:
        if _is_local(mount.root):
            return local_factory, local_root(mount.root)
        store_key = mount.root
        if mount.options:
            store_key += " " + hashlib.sha256(_options_key(mount.options).encode()).hexdigest()
        found = shared.get(store_key)
        if found is None:
            merged = options
            if mount.options:
                merged = {**options_for_root(mount.root, options or {}), **mount.options}
            factory, real_root = backend_for_root(mount.root, merged)
            if not isinstance(factory, PathIONursery):
                factory = PathIONursery(factory)
            found = shared[store_key] = (factory, real_root)
        return found

    table = MountTable(tree, resolve)
    shared[key] = (table, PurePosixPath("/"))
    return table
