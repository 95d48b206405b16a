"""The storage contract: the same expectations for every backend.

Each test receives ``backend`` = (path io, empty root) from conftest.py; a new
backend joins the suite by adding a fixture entry there.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import hashlib
import io
import os
import stat
import time
from pathlib import PurePosixPath
from typing import Any

import pytest

from backends import (
    AsyncPathIO,
    BackendNotInstalled,
    MemoryPathIO,
    PathIO,
    PathIOError,
    PathIONursery,
    backend_for_root,
    register_backend,
    resolve_backend,
    universal_exception,
)


async def put(pio: Any, path: Any, data: bytes) -> None:
    async with pio.open(path, "wb") as f:
        await f.write(data)


async def get(pio: Any, path: Any) -> bytes:
    async with pio.open(path, "rb") as f:
        return await f.read(-1)


async def names(pio: Any, path: Any) -> set[str]:
    return {child.name async for child in pio.list(path)}


def cause_of(excinfo: pytest.ExceptionInfo[PathIOError]) -> BaseException:
    err = excinfo.value
    assert err.reason is not None and err.reason[1] is err.cause
    assert err.__cause__ is err.cause
    return err.cause


class Boom(Exception):
    pass


# -- queries ---------------------------------------------------------------------


async def test_exists_is_dir_is_file(backend):
    pio, root = backend
    await pio.mkdir(root / "dir")
    await put(pio, root / "file", b"x")
    expectations = {
        "missing": (False, False, False),
        "dir": (True, True, False),
        "file": (True, False, True),
        "file/below": (False, False, False),
    }
    for name, expected in expectations.items():
        path = root / name
        got = (await pio.exists(path), await pio.is_dir(path), await pio.is_file(path))
        assert got == expected, name


async def test_stat_size_mtime_and_mode(backend):
    pio, root = backend
    before = time.time()
    await put(pio, root / "f", b"12345")
    await pio.mkdir(root / "d")
    file_stat = await pio.stat(root / "f")
    dir_stat = await pio.stat(root / "d")
    assert file_stat.st_size == 5
    assert before - 5 <= file_stat.st_mtime <= time.time() + 5
    assert file_stat.st_ctime > 0 and file_stat.st_nlink >= 1
    assert stat.S_ISREG(file_stat.st_mode) and not stat.S_ISDIR(file_stat.st_mode)
    assert stat.S_ISDIR(dir_stat.st_mode) and not stat.S_ISREG(dir_stat.st_mode)


async def test_stat_missing_is_file_not_found(backend):
    pio, root = backend
    with pytest.raises(PathIOError) as excinfo:
        await pio.stat(root / "missing")
    assert isinstance(cause_of(excinfo), FileNotFoundError)


async def test_list_children_and_collect(backend):
    pio, root = backend
    await pio.mkdir(root / "d")
    await put(pio, root / "d" / "a", b"")
    await pio.mkdir(root / "d" / "sub")
    children = [p async for p in pio.list(root / "d")]
    assert {p.name for p in children} == {"a", "sub"}
    assert all(p.parent == root / "d" for p in children)
    assert {p.name for p in await pio.list(root / "d")} == {"a", "sub"}
    assert await names(pio, root / "d" / "a") == set()  # a file lists as empty
    assert await names(pio, root / "missing") == set()


async def test_list_many_entries(backend):
    # More than one executor batch for AsyncPathIO.
    pio, root = backend
    expected = {f"f{i:04}" for i in range(1200)}
    for name in expected:
        await put(pio, root / name, b"")
    assert await names(pio, root) == expected


# -- directories -----------------------------------------------------------------


async def test_mkdir_parents_and_exist_ok(backend):
    pio, root = backend
    await pio.mkdir(root / "a" / "b" / "c", parents=True)
    assert await pio.is_dir(root / "a" / "b" / "c")
    await pio.mkdir(root / "a" / "b", exist_ok=True)
    await pio.mkdir(root / "a" / "b" / "c", parents=True, exist_ok=True)
    assert await names(pio, root / "a" / "b") == {"c"}


async def test_mkdir_existing_is_file_exists(backend):
    pio, root = backend
    await pio.mkdir(root / "a")
    await put(pio, root / "f", b"")
    for path, kwargs in ((root / "a", {}), (root / "f", {"exist_ok": True})):
        with pytest.raises(PathIOError) as excinfo:
            await pio.mkdir(path, **kwargs)
        assert isinstance(cause_of(excinfo), FileExistsError)


async def test_mkdir_missing_parent_is_file_not_found(backend):
    pio, root = backend
    with pytest.raises(PathIOError) as excinfo:
        await pio.mkdir(root / "no" / "such")
    assert isinstance(cause_of(excinfo), FileNotFoundError)
    assert not await pio.exists(root / "no")


async def test_rmdir_empty_and_not_empty(backend):
    pio, root = backend
    await pio.mkdir(root / "full" / "inner", parents=True)
    with pytest.raises(PathIOError) as excinfo:
        await pio.rmdir(root / "full")
    cause = cause_of(excinfo)
    assert isinstance(cause, OSError) and cause.errno == errno.ENOTEMPTY
    await pio.rmdir(root / "full" / "inner")
    await pio.rmdir(root / "full")
    assert not await pio.exists(root / "full")


async def test_rmdir_of_file_and_missing(backend):
    pio, root = backend
    await put(pio, root / "f", b"")
    with pytest.raises(PathIOError) as excinfo:
        await pio.rmdir(root / "f")
    assert isinstance(cause_of(excinfo), NotADirectoryError)
    with pytest.raises(PathIOError) as excinfo:
        await pio.rmdir(root / "missing")
    assert isinstance(cause_of(excinfo), FileNotFoundError)


async def test_unlink_file_and_dir(backend):
    pio, root = backend
    await put(pio, root / "f", b"data")
    await pio.unlink(root / "f")
    assert not await pio.exists(root / "f")
    await pio.mkdir(root / "d")
    with pytest.raises(PathIOError) as excinfo:
        await pio.unlink(root / "d")
    assert isinstance(cause_of(excinfo), IsADirectoryError | PermissionError)
    assert await pio.is_dir(root / "d")
    with pytest.raises(PathIOError) as excinfo:
        await pio.unlink(root / "f")
    assert isinstance(cause_of(excinfo), FileNotFoundError)


# -- files -----------------------------------------------------------------------


async def test_open_awaited_round_trip(backend):
    pio, root = backend
    f = await pio.open(root / "f", "wb")
    await f.write(b"hello ")
    await f.write(b"world")
    await f.close()
    f = await pio.open(root / "f")
    assert await f.read(5) == b"hello"
    assert await f.read(100) == b" world"
    assert await f.read(100) == b""
    await f.close()


async def test_open_context_round_trip_with_seek(backend):
    pio, root = backend
    await put(pio, root / "f", b"0123456789")
    async with pio.open(root / "f", mode="rb") as f:
        assert await f.seek(4) == 4
        assert await f.read(3) == b"456"
        await f.seek(-2, io.SEEK_END)
        assert await f.read(10) == b"89"
        await f.seek(-5, io.SEEK_CUR)
        assert await f.read(1) == b"5"


async def test_handle_methods_refuse_the_open_context(backend):
    """``pio.seek(f, ...)`` with what ``open()`` returned (not its ``.file``) is a
    ValueError, as in aioftp; before, its coroutine methods were called unawaited
    and the seek silently did nothing."""
    pio, root = backend
    async with pio.open(root / "f", mode="wb") as f:
        await f.write(b"foo")
        for call in (
            pio.seek(f, 0),
            pio.read(f, 1),
            pio.write(f, b"x"),
        ):
            with pytest.raises(PathIOError) as excinfo:
                await call
            assert isinstance(cause_of(excinfo), ValueError)
        await f.write(b"bar")  # the refused calls changed nothing
    assert await get(pio, root / "f") == b"foobar"


async def test_iter_by_block(backend):
    pio, root = backend
    data = bytes(range(256)) * 40  # 10240 bytes
    await put(pio, root / "f", data)
    async with pio.open(root / "f") as f:
        blocks = [block async for block in f.iter_by_block(4096)]
    assert [len(b) for b in blocks] == [4096, 4096, 2048]
    assert b"".join(blocks) == data


async def test_open_errors_by_meaning(backend):
    pio, root = backend
    await pio.mkdir(root / "d")
    cases = [
        (root / "missing", "rb", FileNotFoundError),
        (root / "no" / "f", "wb", FileNotFoundError),
        (root / "d", "wb", IsADirectoryError),
        (root / "d", "rb", IsADirectoryError),
    ]
    for path, mode, expected in cases:
        with pytest.raises(PathIOError) as excinfo:
            await pio.open(path, mode)
        assert isinstance(cause_of(excinfo), expected), (path, mode)
    assert await names(pio, root) == {"d"}


async def test_large_round_trip(backend):
    pio, root = backend
    data = os.urandom(20 * 1024 * 1024)
    chunk = 1024 * 1024
    async with pio.open(root / "big", "wb") as f:
        for offset in range(0, len(data), chunk):
            await f.write(data[offset : offset + chunk])
    assert (await pio.stat(root / "big")).st_size == len(data)
    digest = hashlib.sha256()
    async with pio.open(root / "big") as f:
        async for block in f.iter_by_block(chunk):
            digest.update(block)
    assert digest.digest() == hashlib.sha256(data).digest()


# -- rename ----------------------------------------------------------------------


async def test_rename_file(backend):
    pio, root = backend
    await put(pio, root / "a", b"A")
    await pio.rename(root / "a", root / "b")
    assert not await pio.exists(root / "a")
    assert await get(pio, root / "b") == b"A"


async def test_rename_dir_moves_contents(backend):
    pio, root = backend
    await pio.mkdir(root / "d" / "sub", parents=True)
    await put(pio, root / "d" / "sub" / "f", b"F")
    await pio.mkdir(root / "other")
    await pio.rename(root / "d", root / "other" / "moved")
    assert not await pio.exists(root / "d")
    assert await get(pio, root / "other" / "moved" / "sub" / "f") == b"F"


async def test_rename_over_existing_file_replaces_it(backend):
    pio, root = backend
    await put(pio, root / "new", b"new")
    await put(pio, root / "old", b"old content")
    await pio.rename(root / "new", root / "old")
    assert await get(pio, root / "old") == b"new"
    assert await names(pio, root) == {"old"}


async def test_rename_missing_source(backend):
    pio, root = backend
    with pytest.raises(PathIOError) as excinfo:
        await pio.rename(root / "missing", root / "x")
    assert isinstance(cause_of(excinfo), FileNotFoundError)


# -- transactional writes ----------------------------------------------------------


async def test_write_visible_only_after_close(backend):
    pio, root = backend
    await put(pio, root / "f", b"old")
    f = await pio.open(root / "f", "wb")
    await f.write(b"new data")
    assert await get(pio, root / "f") == b"old"
    await f.close()
    assert await get(pio, root / "f") == b"new data"
    assert await names(pio, root) == {"f"}


async def test_new_file_appears_only_after_close(backend):
    pio, root = backend
    async with pio.open(root / "f", "wb") as f:
        await f.write(b"x")
        assert not await pio.exists(root / "f")
    assert await get(pio, root / "f") == b"x"


async def test_exception_inside_write_keeps_target(backend):
    pio, root = backend
    await put(pio, root / "f", b"precious")
    with pytest.raises(Boom):
        async with pio.open(root / "f", "wb") as f:
            await f.write(b"half")
            raise Boom
    assert await get(pio, root / "f") == b"precious"
    assert await names(pio, root) == {"f"}  # no temporary left behind


async def test_exception_inside_new_file_write_leaves_nothing(backend):
    pio, root = backend
    with pytest.raises(Boom):
        async with pio.open(root / "f", "wb") as f:
            await f.write(b"half")
            raise Boom
    assert await names(pio, root) == set()


async def test_cancelled_write_keeps_target(backend):
    pio, root = backend
    await put(pio, root / "f", b"precious")
    written = asyncio.Event()

    async def upload() -> None:
        async with pio.open(root / "f", "wb") as f:
            await f.write(b"half")
            written.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(upload())
    await written.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await get(pio, root / "f") == b"precious"
    assert await names(pio, root) == {"f"}


async def test_explicit_abort_then_close_is_noop(backend):
    pio, root = backend
    await put(pio, root / "f", b"precious")
    f = await pio.open(root / "f", "wb")
    await f.write(b"half")
    await f.abort()
    await f.close()
    assert await get(pio, root / "f") == b"precious"
    assert await names(pio, root) == {"f"}


async def test_append_commit_and_rollback(backend):
    pio, root = backend
    await put(pio, root / "f", b"hello")
    async with pio.open(root / "f", "ab") as f:
        await f.write(b" world")
    assert await get(pio, root / "f") == b"hello world"
    with pytest.raises(Boom):
        async with pio.open(root / "f", "ab") as f:
            await f.write(b" partial")
            raise Boom
    assert await get(pio, root / "f") == b"hello world"


async def test_append_creates_missing_file(backend):
    pio, root = backend
    async with pio.open(root / "f", "ab") as f:
        await f.write(b"abc")
    assert await get(pio, root / "f") == b"abc"


async def test_resume_commit_and_rollback(backend):
    pio, root = backend
    await put(pio, root / "f", b"abcdef")
    async with pio.open(root / "f", "r+b") as f:
        await f.seek(3)
        await f.write(b"XYZ123")
    assert await get(pio, root / "f") == b"abcXYZ123"
    with pytest.raises(Boom):
        async with pio.open(root / "f", "r+b") as f:
            await f.seek(9)
            await f.write(b"tail")
            raise Boom
    assert await get(pio, root / "f") == b"abcXYZ123"
    f = await pio.open(root / "f", "r+b")
    await f.seek(6)
    await f.write(b"!!!!!!")
    await f.abort()
    # Rolled back to the previous content: the failed resume neither leaves its own
    # bytes nor takes the old ones (the old tail it overwrote comes back)
    assert await get(pio, root / "f") == b"abcXYZ123"


# -- additions: realpath, symlinks, raw_file ------------------------------------------


async def test_realpath_resolves_symlink(disk_backend):
    pio, root = disk_backend
    await pio.mkdir(root / "real")
    os.symlink(root / "real", root / "link")
    resolved = await pio.realpath(root / "link" / "x")
    assert resolved == root.resolve() / "real" / "x"
    assert await pio.lstat_is_symlink(root / "link")
    assert not await pio.lstat_is_symlink(root / "real")
    assert not await pio.lstat_is_symlink(root / "missing")


async def test_write_through_symlink_keeps_link(disk_backend):
    pio, root = disk_backend
    await put(pio, root / "target", b"old")
    os.symlink(root / "target", root / "link")
    await put(pio, root / "link", b"new")
    assert stat.S_ISLNK(os.lstat(root / "link").st_mode)
    assert await get(pio, root / "target") == b"new"


async def test_write_keeps_permissions(disk_backend):
    pio, root = disk_backend
    await put(pio, root / "f", b"old")
    os.chmod(root / "f", 0o600)
    await put(pio, root / "f", b"new")
    assert stat.S_IMODE(os.stat(root / "f").st_mode) == 0o600


async def test_raw_file_for_local_reads(disk_backend):
    pio, root = disk_backend
    await put(pio, root / "f", b"abc")
    async with pio.open(root / "f") as f:
        assert os.read(f.raw_file.fileno(), 3) == b"abc"
    async with pio.open(root / "g", "wb") as f:
        assert f.raw_file is None


async def test_memory_has_no_raw_file_and_no_symlinks():
    pio = MemoryPathIO()
    await put(pio, PurePosixPath("/f"), b"abc")
    async with pio.open(PurePosixPath("/f")) as f:
        assert f.raw_file is None
    assert await pio.realpath(PurePosixPath("/f")) == PurePosixPath("/f")
    assert not await pio.lstat_is_symlink(PurePosixPath("/f"))


async def test_memory_relative_paths_start_at_the_tree_root():
    """As on disk a relative path starts at the current directory, in memory it
    starts at the tree's root (aioftp's default ``User()`` serves ``Path(".")``);
    ``..`` never climbs above it."""
    pio = MemoryPathIO()
    await pio.mkdir(PurePosixPath("relative/inner"), parents=True)
    assert await pio.is_dir(PurePosixPath("/relative/inner"))
    assert await pio.exists(PurePosixPath("relative"))
    assert await pio.realpath(PurePosixPath(".")) == PurePosixPath("/")
    assert await pio.realpath(PurePosixPath("relative/../..")) == PurePosixPath("/")
    async with pio.open(PurePosixPath("relative/f"), "wb") as f:
        await f.write(b"data")
    assert sorted(p.name for p in await pio.list(PurePosixPath("relative"))) == ["f", "inner"]
    async with pio.open(PurePosixPath("/relative/f"), "rb") as f:
        assert await f.read() == b"data"


async def test_memory_root_is_a_directory_for_unlink_and_rename():
    """The tree's root answers like a disk's directory: unlink is EISDIR, and a
    rename's missing destination parent is reported before the root is refused."""
    pio = MemoryPathIO()
    for root in (PurePosixPath("/"), PurePosixPath(".")):
        with pytest.raises(PathIOError) as excinfo:
            await pio.unlink(root)
        assert isinstance(cause_of(excinfo), IsADirectoryError)
        with pytest.raises(PathIOError) as excinfo:
            await pio.rename(root, PurePosixPath("/missing/x"))
        assert isinstance(cause_of(excinfo), FileNotFoundError)
        with pytest.raises(PathIOError) as excinfo:
            await pio.rename(root, PurePosixPath("/x"))
        assert cause_of(excinfo).errno == errno.EBUSY
    assert await pio.list(PurePosixPath("/")) == []


async def test_memory_rename_dir_into_itself_refused():
    pio = MemoryPathIO()
    await pio.mkdir(PurePosixPath("/a/b"), parents=True)
    with pytest.raises(PathIOError) as excinfo:
        await pio.rename(PurePosixPath("/a"), PurePosixPath("/a/b/c"))
    assert cause_of(excinfo).errno == errno.EINVAL
    assert await pio.is_dir(PurePosixPath("/a/b"))


async def test_immediate_writer_does_not_bypass_an_overridden_write():
    """The server writes uploads through ``write_now`` when a backend has one; a
    subclass that overrides only ``write`` (to count, transform or fail) must still
    see every byte, so the shortcut is offered only where one class defines both."""

    class Failing(MemoryPathIO):
        @universal_exception
        async def write(self, file, data):
            raise OSError("disk on fire")

    class Both(Failing):
        @universal_exception
        async def write(self, file, data):
            raise OSError("disk on fire")

        def write_now(self, file, data):
            raise OSError("disk on fire")

    for cls, shortcut in ((MemoryPathIO, True), (Failing, False), (Both, True)):
        async with cls().open(PurePosixPath("/f"), "wb") as f:
            assert (f.immediate_writer() is not None) is shortcut, cls


async def test_immediate_writer_on_disk(tmp_path):
    class Counting(PathIO):
        async def write(self, file, data):
            await super().write(file, data)

    async with PathIO().open(tmp_path / "a", "wb") as f:
        assert f.immediate_writer() is not None
    async with Counting().open(tmp_path / "b", "wb") as f:
        assert f.immediate_writer() is None
    async with AsyncPathIO().open(tmp_path / "c", "wb") as f:
        assert f.immediate_writer() is None


# -- shared state, errors, timeouts -----------------------------------------------------


async def test_nursery_shares_memory_tree():
    nursery = PathIONursery(MemoryPathIO)
    assert nursery.factory is MemoryPathIO
    first, second = nursery(), nursery(timeout=5)
    assert first is not second and second.timeout == 5
    await put(first, PurePosixPath("/shared"), b"x")
    assert await get(second, PurePosixPath("/shared")) == b"x"
    assert not await MemoryPathIO().exists(PurePosixPath("/shared"))
    nested = PathIONursery(nursery)  # a server wrapping a nursery it was given
    assert await nested().exists(PurePosixPath("/shared"))


async def test_universal_exception_on_coroutines_and_iterators():
    @universal_exception
    async def fails() -> None:
        raise KeyError("k")

    @universal_exception
    async def generator():
        yield 1
        raise ValueError("v")

    class Source:
        def __aiter__(self):
            return self

        async def __anext__(self):
            raise PermissionError("p")

    @universal_exception
    def listing() -> Source:
        return Source()

    with pytest.raises(PathIOError) as excinfo:
        await fails()
    assert isinstance(cause_of(excinfo), KeyError)
    with pytest.raises(PathIOError) as excinfo:
        [item async for item in generator()]
    assert isinstance(cause_of(excinfo), ValueError)
    with pytest.raises(PathIOError) as excinfo:
        await listing()
    assert isinstance(cause_of(excinfo), PermissionError)


async def test_universal_exception_passes_control_flow():
    @universal_exception
    async def cancelled() -> None:
        raise asyncio.CancelledError

    @universal_exception
    async def unimplemented() -> None:
        raise NotImplementedError

    with pytest.raises(asyncio.CancelledError):
        await cancelled()
    with pytest.raises(NotImplementedError):
        await unimplemented()


class _StuckExecutor(concurrent.futures.Executor):
    """An executor whose jobs never finish: a disk that stopped answering."""

    def submit(self, fn, /, *args, **kwargs):
        return concurrent.futures.Future()


async def test_async_pathio_timeout(tmp_path):
    pio = AsyncPathIO(timeout=0.05, executor=_StuckExecutor())
    with pytest.raises(PathIOError) as excinfo:
        await pio.exists(tmp_path)
    assert isinstance(cause_of(excinfo), TimeoutError)
    with pytest.raises(PathIOError) as excinfo:
        await pio.open(tmp_path / "f", "wb")
    assert isinstance(cause_of(excinfo), TimeoutError)


# -- registry ---------------------------------------------------------------------


def test_registry_local_and_memory_roots(tmp_path):
    assert backend_for_root(tmp_path) == (PathIO, tmp_path)
    assert backend_for_root(str(tmp_path)) == (PathIO, tmp_path)
    assert backend_for_root(tmp_path.as_uri()) == (PathIO, tmp_path)
    factory, root = backend_for_root("memory://")
    assert root == PurePosixPath("/") and factory.factory is MemoryPathIO
    again, sub = backend_for_root("memory:///alice/home")
    assert again is factory and sub == PurePosixPath("/alice/home")


def test_registry_names_missing_package(tmp_path, monkeypatch):
    from backends import registry

    monkeypatch.setattr(registry, "_BACKENDS", dict(registry._BACKENDS))
    (tmp_path / "gw_fake_backend.py").write_text("import gw_definitely_missing_dep\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    register_backend("fake", "gw_fake_backend:FakePathIO", "gw-missing-dist")
    with pytest.raises(BackendNotInstalled, match="pip install gw-missing-dist"):
        backend_for_root("fake://bucket/prefix")
    register_backend("nomodule", "gw_no_such_backend:X", "whatever")
    with pytest.raises(BackendNotInstalled, match="backend module 'gw_no_such_backend'"):
        resolve_backend("nomodule")
    register_backend("noroot", "json:JSONDecoder")
    with pytest.raises(TypeError, match="from_root"):
        backend_for_root("noroot://x")


async def test_durable_uploads_reach_the_disk_before_the_name(tmp_path, monkeypatch):
    """DurablePathIO syncs the upload's bytes before renaming it into place, then the
    directory; a plain PathIO does not pay for that."""
    import backends.local as local
    from backends import DurablePathIO, PathIO

    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        target = os.readlink(f"/proc/self/fd/{fd}")
        synced.append("dir" if os.path.isdir(target) else os.path.basename(target))
        real_fsync(fd)

    monkeypatch.setattr(local.os, "fsync", spy)
    for factory, name in ((PathIO, "plain.bin"), (DurablePathIO, "durable.bin")):
        async with factory().open(tmp_path / name, "wb") as f:
            await f.write(b"bytes")
    assert len(synced) == 2
    assert synced[0].startswith(".durable.bin") and synced[1] == "dir"
    assert (tmp_path / "durable.bin").read_bytes() == b"bytes"
    async with DurablePathIO().open(tmp_path / "durable.bin", "ab") as f:
        await f.write(b"+more")
    assert synced[2:] == ["durable.bin"]  # appends are synced in place


async def test_exclusive_create_refuses_a_name_taken_meanwhile(backend):
    # "xb" is how STOU takes its name: the commit itself refuses a name another
    # upload (maybe on another node) took after the open, and that upload stays
    pio, root = backend
    if not pio.exclusive_create:
        with pytest.raises((ValueError, PathIOError)):
            async with pio.open(root / "x", "xb") as f:
                await f.write(b"no")
        return
    async with pio.open(root / "free", "xb") as f:
        await f.write(b"mine")
    assert await get(pio, root / "free") == b"mine"
    f = await pio.open(root / "taken", "xb")
    await f.write(b"late")
    await put(pio, root / "taken", b"first")
    with pytest.raises(PathIOError) as excinfo:
        await f.close()
    assert isinstance(cause_of(excinfo), FileExistsError)
    assert await get(pio, root / "taken") == b"first"
    assert await names(pio, root) == {"free", "taken"}  # no temporary left behind


# -- checksums kept with files -------------------------------------------------------

#: Backends that keep the checksums they are handed (the others keep none: allowed).
_KEEPING = ("local", "memory", "s3")


def _sums(data: bytes) -> dict[str, str]:
    import zlib

    return {"sha256": hashlib.sha256(data).hexdigest(), "crc32": f"{zlib.crc32(data):08x}"}


async def _stored(pio: Any, path: Any) -> dict[str, str]:
    """The checksums storage answers for ``path``, each checked against its content:
    a store may keep none, never a wrong one."""
    stored = await pio.stored_checksums(path)
    if stored is None:
        return {}
    data = await get(pio, path)
    assert stored.size == len(data)
    expected = _sums(data)
    for key, value in stored.values.items():
        if key in expected:
            assert value == expected[key], f"stale {key} for {path}"
    return dict(stored.values)


async def test_checksums_go_with_a_new_file_and_never_go_stale(backend):
    pio, root = backend
    keeps = pio.backend_name in _KEEPING
    data = os.urandom(70_000)
    async with pio.open(root / "f.bin", "wb") as f:
        await f.write(data)
        await f.keep_checksums(_sums(data))
    kept = await _stored(pio, root / "f.bin")
    assert kept == (_sums(data) if keeps else {})
    # an upload that is rolled back changes nothing, its checksums included
    with pytest.raises(Boom):
        async with pio.open(root / "f.bin", "wb") as f:
            await f.write(b"never")
            await f.keep_checksums(_sums(b"never"))
            raise Boom
    assert await _stored(pio, root / "f.bin") == kept
    # an append changes the bytes: what is answered is the new content's, or nothing
    async with pio.open(root / "f.bin", "ab") as f:
        await f.write(b"more")
    assert await _stored(pio, root / "f.bin") == {}
    # a new file without checksums replaces the old ones
    await put(pio, root / "f.bin", data)
    await pio.rename(root / "f.bin", root / "g.bin")
    assert await _stored(pio, root / "g.bin") == {}
    # a rename keeps them
    async with pio.open(root / "h.bin", "wb") as f:
        await f.write(b"h" * 1000)
        await f.keep_checksums(_sums(b"h" * 1000))
    await pio.mkdir(root / "dir")
    await pio.rename(root / "h.bin", root / "dir" / "h.bin")
    assert await _stored(pio, root / "dir" / "h.bin") == (_sums(b"h" * 1000) if keeps else {})


async def test_checksums_of_a_file_read_through_are_kept(backend):
    pio, root = backend
    keeps = pio.backend_name in _KEEPING
    data = os.urandom(5000)
    await put(pio, root / "r.bin", data)
    assert await _stored(pio, root / "r.bin") == {}
    async with pio.open(root / "r.bin", "rb") as f:
        await f.read(100)
        await f.keep_checksums(_sums(data))  # not read to its end: ignored
    assert await _stored(pio, root / "r.bin") == {}
    async with pio.open(root / "r.bin", "rb") as f:
        while await f.read(1000):
            pass
        await f.keep_checksums(_sums(data))
    assert await _stored(pio, root / "r.bin") == (_sums(data) if keeps else {})


async def test_stored_checksums_of_what_is_no_file(backend):
    pio, root = backend
    await pio.mkdir(root / "dir")
    for path, cause in ((root / "missing", FileNotFoundError), (root / "dir", IsADirectoryError)):
        try:
            stored = await pio.stored_checksums(path)
        except PathIOError as exc:
            assert isinstance(exc.cause, cause), exc.cause
        else:
            assert stored is None  # a store that cannot tell
