"""An in-memory tree: for tests, demos and scratch servers.

All sessions created through a ``PathIONursery`` share one tree (the ``state``).
Every operation completes without yielding to the loop, so each one is atomic
with respect to other sessions.  A file's content is never changed in place:
writers work on a private buffer that replaces the content on commit, so a reader
keeps a consistent snapshot and an aborted write changes nothing.

A file's checksums live on its node, next to its content, and are replaced whenever
the content is: an upload's come with it, any other write drops them.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import stat as stat_module
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import PurePosixPath
from typing import Any, NamedTuple

from .base import (
    AbstractAsyncLister,
    AbstractPathIO,
    AsyncLister,
    check_handle,
    moves_bytes_as,
    universal_exception,
)
from .checksums import Stored, clean_values
from .paths import absolute_parts, seek_target

__all__ = ("MemoryPathIO", "MemoryStat")


def _os_error(code: int, path: object, cls: type[OSError] = OSError) -> OSError:
    return cls(code, os.strerror(code), str(path))


class MemoryStat(NamedTuple):
    """The subset of ``os.stat_result`` the protocol reads."""

    st_size: int
    st_mtime: float
    st_ctime: float
    st_nlink: int
    st_mode: int


class _Node:
    __slots__ = ("ctime", "mtime")

    def __init__(self) -> None:
        self.ctime = self.mtime = time.time()

    def touch(self) -> None:
        self.mtime = time.time()


class _File(_Node):
    __slots__ = ("data", "checksums")

    def __init__(self, data: bytearray | None = None) -> None:
        super().__init__()
        self.data = bytearray() if data is None else data
        #: checksums of exactly ``data`` (replaced with it)
        self.checksums: dict[str, str] = {}


class _Dir(_Node):
    __slots__ = ("children",)

    def __init__(self) -> None:
        super().__init__()
        self.children: dict[str, _Node] = {}


class _MemoryFile:
    """An open memory file: a snapshot to read, or a private buffer to commit.

    Writes go to a private copy, committed by ``close``; an abort leaves the file
    exactly as it was, as local disk's rollback does.
    """

    __slots__ = (
        "path",
        "data",
        "position",
        "writable",
        "append",
        "in_place",
        "owned",
        "size",
        "exclusive",
        "node",
        "checksums",
    )

    def __init__(
        self, path: PurePosixPath, data: bytearray, *, writable: bool, append: bool, in_place: bool
    ) -> None:
        self.path = path
        self.data = data
        self.position = len(data) if append else 0
        self.writable = writable
        self.append = append
        self.in_place = in_place
        # Whether ``data`` is ours to change; shared content is copied on first write.
        self.owned = False
        self.size = len(data)
        #: opened "xb": the close refuses a name that exists by then
        self.exclusive = False
        #: the node a reader reads (its checksums may be kept once read through)
        self.node: _File | None = None
        #: a new file's checksums, given to its node at commit
        self.checksums: dict[str, str] = {}

    def read(self, block_size: int) -> bytes:
        start = self.position
        end = len(self.data) if block_size is None or block_size < 0 else start + block_size
        with memoryview(self.data) as view:
            chunk = bytes(view[start:end])
        self.position = start + len(chunk)
        return chunk

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self.writable:
            raise io.UnsupportedOperation("not writable")
        if not self.owned:
            self.data = bytearray(self.data)
            self.owned = True
        buffer = self.data
        if self.append:
            self.position = len(buffer)
        position = self.position
        if position == len(buffer):
            buffer += data
        else:
            if position > len(buffer):
                buffer.extend(bytes(position - len(buffer)))
            buffer[position : position + len(data)] = data
        self.position = position + len(data)

    def seek(self, offset: int, whence: int) -> int:
        position = seek_target(offset, whence, self.position, len(self.data))
        if position < 0:
            raise _os_error(errno.EINVAL, self.path)
        self.position = position
        return position


class MemoryPathIO(AbstractPathIO[PurePosixPath]):
    """Files and directories held in memory, addressed by absolute ``PurePosixPath``."""

    #: what monitoring calls this storage (metrics labels)
    backend_name = "memory"
    exclusive_create = True

    def __init__(
        self,
        timeout: float | None = None,
        connection: Any = None,
        state: _Dir | None = None,
    ) -> None:
        super().__init__(timeout=timeout, connection=connection, state=state)
        self._root = _Dir() if state is None else state

    @property
    def state(self) -> _Dir:
        return self._root

    def __repr__(self) -> str:
        return f"MemoryPathIO(timeout={self.timeout!r}, root={id(self._root):#x})"

    # -- lookups -------------------------------------------------------------

    @staticmethod
    def _parts(path: PurePosixPath | str) -> tuple[PurePosixPath, list[str]]:
        return absolute_parts(path)

    def _walk(self, path: PurePosixPath, parts: list[str]) -> _Node:
        node: _Node = self._root
        for part in parts:
            if not isinstance(node, _Dir):
                raise _os_error(errno.ENOTDIR, path, NotADirectoryError)
            child = node.children.get(part)
            if child is None:
                raise _os_error(errno.ENOENT, path, FileNotFoundError)
            node = child
        return node

    def _get(self, path: PurePosixPath | str) -> _Node:
        return self._walk(*self._parts(path))

    def _find(self, path: PurePosixPath | str) -> _Node | None:
        try:
            return self._get(path)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def _parent(self, path: PurePosixPath | str) -> tuple[_Dir, str, PurePosixPath]:
        """The directory that holds ``path`` and the name in it; the root has none."""
        path, parts = self._parts(path)
        if not parts:
            raise _os_error(errno.EBUSY, path)
        parent = self._walk(path, parts[:-1])
        if not isinstance(parent, _Dir):
            raise _os_error(errno.ENOTDIR, path, NotADirectoryError)
        return parent, parts[-1], path

    # -- queries -------------------------------------------------------------

    @universal_exception
    async def exists(self, path: PurePosixPath) -> bool:
        return self._find(path) is not None

    @universal_exception
    async def is_dir(self, path: PurePosixPath) -> bool:
        return isinstance(self._find(path), _Dir)

    @universal_exception
    async def is_file(self, path: PurePosixPath) -> bool:
        return isinstance(self._find(path), _File)

    @universal_exception
    async def stat(self, path: PurePosixPath) -> MemoryStat:
        node = self._get(path)
        if isinstance(node, _File):
            return MemoryStat(
                len(node.data), node.mtime, node.ctime, 1, stat_module.S_IFREG | 0o644
            )
        assert isinstance(node, _Dir)
        return MemoryStat(0, node.mtime, node.ctime, 2, stat_module.S_IFDIR | 0o755)

    @universal_exception
    def list(self, path: PurePosixPath) -> AbstractAsyncLister:
        return AsyncLister(self._iterate(path), timeout=self.timeout)

    async def _iterate(self, path: PurePosixPath) -> AsyncIterator[PurePosixPath]:
        path = PurePosixPath(path)
        node = self._find(path)
        if isinstance(node, _Dir):
            for name in list(node.children):
                yield path / name

    @universal_exception
    async def realpath(self, path: PurePosixPath) -> PurePosixPath:
        return PurePosixPath("/", *self._parts(path)[1])

    @universal_exception
    async def lstat_is_symlink(self, path: PurePosixPath) -> bool:
        self._parts(path)
        return False

    # -- changes -------------------------------------------------------------

    @universal_exception
    async def mkdir(
        self, path: PurePosixPath, *, parents: bool = False, exist_ok: bool = False
    ) -> None:
        path, parts = self._parts(path)
        node: _Node = self._root
        for depth, part in enumerate(parts, start=1):
            if not isinstance(node, _Dir):
                raise _os_error(errno.ENOTDIR, path, NotADirectoryError)
            child = node.children.get(part)
            last = depth == len(parts)
            if child is None:
                if not (last or parents):
                    raise _os_error(errno.ENOENT, path, FileNotFoundError)
                child = node.children[part] = _Dir()
                node.touch()
            elif last and not (exist_ok and isinstance(child, _Dir)):
                raise _os_error(errno.EEXIST, path, FileExistsError)
            node = child
        if not parts and not exist_ok:
            raise _os_error(errno.EEXIST, path, FileExistsError)

    @universal_exception
    async def rmdir(self, path: PurePosixPath) -> None:
        parent, name, path = self._parent(path)
        node = parent.children.get(name)
        if node is None:
            raise _os_error(errno.ENOENT, path, FileNotFoundError)
        if not isinstance(node, _Dir):
            raise _os_error(errno.ENOTDIR, path, NotADirectoryError)
        if node.children:
            raise _os_error(errno.ENOTEMPTY, path)
        del parent.children[name]
        parent.touch()

    @universal_exception
    async def unlink(self, path: PurePosixPath) -> None:
        if not self._parts(path)[1]:
            raise _os_error(errno.EISDIR, path, IsADirectoryError)  # the root is a directory
        parent, name, path = self._parent(path)
        node = parent.children.get(name)
        if node is None:
            raise _os_error(errno.ENOENT, path, FileNotFoundError)
        if isinstance(node, _Dir):
            raise _os_error(errno.EISDIR, path, IsADirectoryError)
        del parent.children[name]
        parent.touch()

    @universal_exception
    async def rename(self, source: PurePosixPath, destination: PurePosixPath) -> None:
        # Both paths are looked up before the root is refused, as a disk does: a
        # missing destination parent is ENOENT whatever the source.
        if not self._parts(source)[1]:
            self._parent(destination)
        source_parent, source_name, source = self._parent(source)
        node = source_parent.children.get(source_name)
        if node is None:
            raise _os_error(errno.ENOENT, source, FileNotFoundError)
        target_parent, target_name, destination = self._parent(destination)
        existing = target_parent.children.get(target_name)
        if existing is node:
            return
        if isinstance(node, _Dir):
            # A directory cannot move below itself.
            if any(ancestor is node for ancestor in self._ancestors(destination)):
                raise _os_error(errno.EINVAL, destination)
            if existing is not None and not isinstance(existing, _Dir):
                raise _os_error(errno.ENOTDIR, destination, NotADirectoryError)
        elif isinstance(existing, _Dir):
            raise _os_error(errno.EISDIR, destination, IsADirectoryError)
        if isinstance(existing, _Dir) and existing.children:
            raise _os_error(errno.ENOTEMPTY, destination)
        del source_parent.children[source_name]
        target_parent.children[target_name] = node
        source_parent.touch()
        target_parent.touch()

    # ``builtins.list``: inside the class body ``list`` is the method above.
    def _ancestors(self, path: PurePosixPath) -> builtins.list[_Node]:
        _, parts = self._parts(path)
        nodes: builtins.list[_Node] = [self._root]
        node: _Node = self._root
        for part in parts[:-1]:
            assert isinstance(node, _Dir)
            node = node.children[part]
            nodes.append(node)
        return nodes

    # -- files ---------------------------------------------------------------

    async def _open(self, path: PurePosixPath, mode: str = "rb") -> _MemoryFile:
        chars = set(mode)
        kinds = chars & {"r", "w", "a", "x"}
        if "b" not in chars or len(kinds) != 1 or chars - {"r", "w", "a", "x", "b", "+"}:
            raise ValueError(f"unsupported mode {mode!r}; expected rb, wb, xb, ab or r+b")
        kind = kinds.pop()
        exclusive = kind == "x"
        if exclusive:
            kind = "w"
        if kind == "r":
            node = self._get(path)
            if isinstance(node, _Dir):
                raise _os_error(errno.EISDIR, path, IsADirectoryError)
            assert isinstance(node, _File)
            plus = "+" in chars
            handle = _MemoryFile(
                PurePosixPath(path), node.data, writable=plus, append=False, in_place=plus
            )
            handle.node = node
            return handle
        if not self._parts(path)[1]:
            raise _os_error(errno.EISDIR, path, IsADirectoryError)
        parent, name, path = self._parent(path)
        existing = parent.children.get(name)
        if isinstance(existing, _Dir):
            raise _os_error(errno.EISDIR, path, IsADirectoryError)
        data = existing.data if (kind == "a" and isinstance(existing, _File)) else bytearray()
        handle = _MemoryFile(path, data, writable=True, append=kind == "a", in_place=kind == "a")
        # A new empty buffer is already private; "wb" must not see the old content.
        handle.owned = kind == "w" or existing is None
        handle.exclusive = exclusive
        return handle

    @universal_exception
    async def seek(self, file: _MemoryFile, offset: int, whence: int = io.SEEK_SET) -> int:
        check_handle(file)
        return file.seek(offset, whence)

    @universal_exception
    async def write(self, file: _MemoryFile, data: bytes) -> None:
        check_handle(file)
        file.write(data)

    @universal_exception
    def write_now(self, file: _MemoryFile, data: bytes | memoryview) -> None:
        check_handle(file)
        """``write`` without the coroutine (memory never waits)."""
        file.write(data)

    @universal_exception
    async def read(self, file: _MemoryFile, block_size: int) -> bytes:
        check_handle(file)
        return file.read(block_size)

    @universal_exception
    async def close(self, file: _MemoryFile) -> None:
        check_handle(file)
        if not file.writable:
            return
        if not file.owned and self._find(file.path) is not None:
            return  # opened for writing but nothing written: leave the file alone
        parent, name, path = self._parent(file.path)
        node = parent.children.get(name)
        if isinstance(node, _Dir):
            raise _os_error(errno.EISDIR, path, IsADirectoryError)
        if file.exclusive and node is not None:
            file.writable = False
            file.data = bytearray()
            raise _os_error(errno.EEXIST, path, FileExistsError)
        if isinstance(node, _File):
            node.data = file.data
            node.touch()
        else:
            node = parent.children[name] = _File(file.data)
            parent.touch()
        node.checksums = file.checksums  # new content: its own checksums, or none
        file.writable = False

    @universal_exception
    async def stored_checksums(self, path: PurePosixPath) -> Stored | None:
        if not moves_bytes_as(self, MemoryPathIO):
            return None
        node = self._get(path)
        if isinstance(node, _Dir):
            raise _os_error(errno.EISDIR, path, IsADirectoryError)
        assert isinstance(node, _File)
        return Stored(len(node.data), dict(node.checksums))

    @universal_exception
    async def keep_checksums(self, file: _MemoryFile, values: Mapping[str, str]) -> None:
        check_handle(file)
        if not moves_bytes_as(self, MemoryPathIO):
            return
        clean = clean_values(values)
        if file.writable:
            if not (file.in_place or file.append):  # "wb"/"xb": the whole new content
                file.checksums = clean
        elif file.node is not None and file.node.data is file.data:
            # read through a snapshot that is still the file's content
            if file.position >= len(file.data):
                file.node.checksums = {**file.node.checksums, **clean}

    @universal_exception
    async def abort(self, file: _MemoryFile) -> None:
        check_handle(file)
        # writes went to a private copy: the file keeps its previous content
        file.writable = False
        file.data = bytearray()
