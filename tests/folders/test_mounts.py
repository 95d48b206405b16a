"""``backends.mounts`` over memory stores: routing, listing, protection, moves."""

from __future__ import annotations

import errno
import stat
from pathlib import Path, PurePath, PurePosixPath
from typing import Any

import pytest

from backends import MemoryPathIO, PathIO, PathIOError, PathIONursery
from backends.mounts import (
    CROSS_FOLDER_DIRECTORY,
    Mount,
    MountedPathIO,
    MountInfo,
    MountTable,
    shared_table,
)

P = PurePosixPath


class FailingWrites(MemoryPathIO):
    """A memory store whose writes fail after ``allowed`` bytes (a full disk, a cut)."""

    allowed = 5

    async def write(self, file: Any, data: bytes) -> None:
        if file.position + len(data) > self.allowed:
            raise OSError(errno.ENOSPC, "no space left", str(file.path))
        await super().write(file, data)


def stores(*names: str, failing: str | None = None) -> dict[str, PathIONursery]:
    return {name: PathIONursery(FailingWrites if name == failing else MemoryPathIO) for name in names}


def tree(mounts: list[Mount], nurseries: dict[str, PathIONursery]) -> MountedPathIO:
    """A tree whose mount roots "mem:NAME/sub" are the memory store NAME at /sub."""

    def resolve(mount: Mount) -> tuple[Any, PurePath]:
        name, _, sub = mount.root.removeprefix("mem:").partition("/")
        return nurseries[name], P("/", sub)

    return MountTable(mounts, resolve).path_io()


async def put(pio: Any, path: str | PurePath, data: bytes) -> None:
    async with pio.open(P(path) if isinstance(path, str) else path, "wb") as f:
        await f.write(data)


async def get(pio: Any, path: str | PurePath) -> bytes:
    async with pio.open(P(str(path)), "rb") as f:
        return bytes(await f.read(-1))


async def names(pio: Any, path: str) -> list[str]:
    return sorted([child.name async for child in pio.list(P(path))])


def cause(excinfo: pytest.ExceptionInfo[PathIOError]) -> BaseException:
    assert excinfo.value.cause is not None
    return excinfo.value.cause


@pytest.fixture
def memory() -> dict[str, PathIONursery]:
    return stores("home", "shared", "inbox")


@pytest.fixture
def pio(memory: dict[str, PathIONursery]) -> MountedPathIO:
    return tree(
        [
            Mount("/", None, "mem:home/alice"),
            Mount("/shared", "shared", "mem:shared/", read_only=True),
            Mount("/deep/in/box", "inbox", "mem:inbox/x"),
        ],
        memory,
    )


async def raw(memory: dict[str, PathIONursery], store: str) -> MemoryPathIO:
    pio = memory[store]()
    assert isinstance(pio, MemoryPathIO)
    return pio


async def test_paths_are_translated_into_each_store(pio, memory) -> None:
    await put(pio, "/a.txt", b"home")
    await put(pio, "/deep/in/box/b.txt", b"inbox")
    home, inbox = await raw(memory, "home"), await raw(memory, "inbox")
    assert await get(home, "/alice/a.txt") == b"home"
    assert await get(inbox, "/x/b.txt") == b"inbox"
    shared = await raw(memory, "shared")
    await put(shared, "/readme", b"shared")
    assert await get(pio, "/shared/readme") == b"shared"
    assert await pio.is_file(P("/shared/readme"))
    assert (await pio.stat(P("/shared/readme"))).st_size == 6


async def test_listing_shows_mount_points_and_the_names_leading_to_them(pio, memory) -> None:
    await put(pio, "/a.txt", b"1")
    await pio.mkdir(P("/docs"))
    assert await names(pio, "/") == ["a.txt", "deep", "docs", "shared"]
    # "/deep" and "/deep/in" exist in no store: they lead to the /deep/in/box mount
    assert await names(pio, "/deep") == ["in"]
    assert await names(pio, "/deep/in") == ["box"]
    for path in ("/shared", "/deep", "/deep/in", "/deep/in/box"):
        assert await pio.exists(P(path)) and await pio.is_dir(P(path))
        assert not await pio.is_file(P(path))
        assert stat.S_ISDIR((await pio.stat(P(path))).st_mode)
    home = await raw(memory, "home")
    assert not await home.exists(P("/alice/deep"))


async def test_a_mount_hides_the_same_name_in_its_parent_store(pio, memory) -> None:
    home = await raw(memory, "home")
    await home.mkdir(P("/alice/shared"), parents=True)
    await put(home, "/alice/shared/hidden", b"h")
    assert await names(pio, "/") == ["deep", "shared"]  # listed once
    assert await names(pio, "/shared") == []  # the folder's content, not the parent's


async def test_nested_mounts_pick_the_longest_prefix() -> None:
    memory = stores("a", "b", "c")
    pio = tree(
        [Mount("/", None, "mem:a/"), Mount("/x", "b", "mem:b/"), Mount("/x/y", "c", "mem:c/")],
        memory,
    )
    await put(pio, "/x/file", b"in b")
    await put(pio, "/x/y/file", b"in c")
    await put(pio, "/x/yy", b"in b too")  # a name that merely starts like a mount
    assert await names(pio, "/x") == ["file", "y", "yy"]
    assert await get(memory["b"](), "/file") == b"in b"
    assert await get(memory["b"](), "/yy") == b"in b too"
    assert await get(memory["c"](), "/file") == b"in c"
    assert pio.mount_of(P("/x/y/z")) == MountInfo("c", P("/x/y"), False)
    assert pio.mount_of("/x/yy") == MountInfo("b", P("/x"), False)
    assert pio.mount_of(P("/other")) is None  # the account's own root


async def test_mount_points_cannot_be_removed_renamed_or_replaced(pio) -> None:
    await put(pio, "/f", b"1")
    for action in (
        pio.rmdir(P("/deep/in/box")),
        pio.rmdir(P("/deep")),
        pio.unlink(P("/deep/in/box")),
        pio.rename(P("/deep/in/box"), P("/moved")),
        pio.rename(P("/deep"), P("/moved")),
        pio.rename(P("/f"), P("/deep/in/box")),
    ):
        with pytest.raises(PathIOError) as excinfo:
            await action
        assert isinstance(cause(excinfo), PermissionError)
    with pytest.raises(PathIOError) as excinfo:
        await pio.mkdir(P("/deep/in/box"))
    assert isinstance(cause(excinfo), FileExistsError)
    await pio.mkdir(P("/deep/in/box"), parents=True, exist_ok=True)
    with pytest.raises(PathIOError) as excinfo:
        await pio.open(P("/deep"), "wb")
    assert isinstance(cause(excinfo), IsADirectoryError)
    assert await names(pio, "/") == ["deep", "f", "shared"]


async def test_a_read_only_mount_refuses_every_change(pio, memory) -> None:
    shared = await raw(memory, "shared")
    await shared.mkdir(P("/dir"))
    await put(shared, "/file", b"keep")
    await put(pio, "/mine", b"mine")
    attempts = [
        pio.open(P("/shared/new"), "wb"),
        pio.open(P("/shared/file"), "ab"),
        pio.open(P("/shared/file"), "r+b"),
        pio.open(P("/shared/new"), "xb"),
        pio.mkdir(P("/shared/made")),
        pio.rmdir(P("/shared/dir")),
        pio.unlink(P("/shared/file")),
        pio.rename(P("/shared/file"), P("/shared/renamed")),
        pio.rename(P("/shared/file"), P("/taken")),
        pio.rename(P("/mine"), P("/shared/mine")),
        pio.chmod(P("/shared/file"), 0o600),
    ]
    for attempt in attempts:
        with pytest.raises(PathIOError) as excinfo:
            await attempt
        assert isinstance(cause(excinfo), PermissionError), attempt
    assert await names(shared, "/") == ["dir", "file"]
    assert await get(shared, "/file") == b"keep"
    assert await get(pio, "/shared/file") == b"keep"  # reading is fine
    assert await get(pio, "/mine") == b"mine"


async def test_rename_within_a_mount_is_the_stores_rename(pio, memory) -> None:
    await put(pio, "/deep/in/box/a", b"data")
    await pio.mkdir(P("/deep/in/box/dir"))
    await pio.rename(P("/deep/in/box/a"), P("/deep/in/box/dir/b"))
    await pio.rename(P("/deep/in/box/dir"), P("/deep/in/box/dir2"))
    assert await get(memory["inbox"](), "/x/dir2/b") == b"data"


async def test_rename_of_a_file_across_mounts_copies_then_deletes(pio, memory) -> None:
    payload = bytes(range(256)) * 9000  # > one copy block
    await put(pio, "/big.bin", payload)
    await pio.rename(P("/big.bin"), P("/deep/in/box/big.bin"))
    assert not await pio.exists(P("/big.bin"))
    assert await get(memory["inbox"](), "/x/big.bin") == payload
    # and over an existing file: replaced, as a rename does
    await put(pio, "/small", b"new")
    await pio.rename(P("/small"), P("/deep/in/box/big.bin"))
    assert await get(pio, "/deep/in/box/big.bin") == b"new"


async def test_rename_of_a_directory_across_mounts_is_refused(pio) -> None:
    await pio.mkdir(P("/dir"))
    await put(pio, "/dir/f", b"1")
    with pytest.raises(PathIOError) as excinfo:
        await pio.rename(P("/dir"), P("/deep/in/box/dir"))
    error = cause(excinfo)
    assert isinstance(error, OSError) and error.errno == errno.EXDEV
    assert error.strerror == CROSS_FOLDER_DIRECTORY
    assert await get(pio, "/dir/f") == b"1"
    assert await names(pio, "/deep/in/box") == []


async def test_failed_cross_mount_copy_leaves_nothing_and_keeps_the_source() -> None:
    memory = stores("home", "full", failing="full")
    pio = tree([Mount("/", None, "mem:home/"), Mount("/full", "full", "mem:full/")], memory)
    await put(pio, "/f.bin", b"0123456789" * 3)
    await put(pio, "/full/f.bin", b"old")  # fits: what was there stays
    with pytest.raises(PathIOError) as excinfo:
        await pio.rename(P("/f.bin"), P("/full/f.bin"))
    error = cause(excinfo)
    assert isinstance(error, OSError) and error.errno == errno.ENOSPC
    assert await get(pio, "/f.bin") == b"0123456789" * 3
    assert await get(pio, "/full/f.bin") == b"old"
    with pytest.raises(PathIOError):
        await pio.rename(P("/f.bin"), P("/full/new.bin"))
    assert await names(pio, "/full") == ["f.bin"]
    assert await pio.exists(P("/f.bin"))


async def test_two_mounts_of_one_store_use_its_rename(memory) -> None:
    pio = tree(
        [Mount("/", None, "mem:home/alice"), Mount("/pub", "pub", "mem:home/pub")], memory
    )
    await pio.mkdir(P("/dir"))
    await put(pio, "/f", b"x")
    await pio.rename(P("/f"), P("/pub/f"))
    assert await get(memory["home"](), "/pub/f") == b"x"
    with pytest.raises(PathIOError) as excinfo:  # directories: refused all the same
        await pio.rename(P("/dir"), P("/pub/dir"))
    error = cause(excinfo)
    assert isinstance(error, OSError) and error.errno == errno.EXDEV


async def test_children_are_made_on_first_use(memory) -> None:
    made: list[str] = []

    def resolve(mount: Mount) -> tuple[Any, PurePath]:
        made.append(mount.path)
        return memory["home"], P("/", mount.path.strip("/") or "root")

    table = MountTable([Mount("/", None, "mem:"), Mount("/a", "a", "mem:"), Mount("/b", "b", "mem:")], resolve)
    first, second = table.path_io(), table.path_io()
    assert made == []
    await first.mkdir(P("/a/x"), parents=True)
    await second.exists(P("/a/x"))
    assert made == ["/a"]  # resolved once for the table, whatever the sessions
    assert first.state is second.state


async def test_realpath_maps_back_and_refuses_escapes(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "disk").mkdir()
    (tmp_path / "disk" / "escape").symlink_to(outside)
    (tmp_path / "disk" / "real").mkdir()
    (tmp_path / "disk" / "inside").symlink_to(tmp_path / "disk" / "real")
    table = MountTable(
        [Mount("/", None, "memory://"), Mount("/disk", "disk", str(tmp_path / "disk"))],
        lambda m: (PathIO, Path(m.root)) if "://" not in m.root else (MemoryPathIO, P("/")),
    )
    pio = table.path_io()
    assert await pio.realpath(P("/disk/inside/x")) == P("/disk/real/x")
    assert await pio.realpath(P("/disk")) == P("/disk")
    with pytest.raises(PathIOError) as excinfo:
        await pio.realpath(P("/disk/escape/x"))
    assert isinstance(cause(excinfo), PermissionError)


async def test_local_roots_are_made_and_stores_shared(tmp_path: Path) -> None:
    shared: dict[str, tuple[Any, Any]] = {}
    archive = tmp_path / "archive" / "alice"
    mounts = [Mount("/archive", "archive", str(archive)), Mount("/inbox", "inbox", "memory://inbox")]
    one = shared_table(tmp_path / "home", mounts, local_factory=PathIO, shared=shared)
    again = shared_table(tmp_path / "home", list(mounts), local_factory=PathIO, shared=shared)
    assert one is again
    pio = one.path_io()
    await put(pio, "/archive/f", b"on disk")
    assert (archive / "f").read_bytes() == b"on disk"
    await put(pio, "/inbox/m", b"in memory")
    assert "memory://inbox" in shared  # the store any user rooted there gets
    assert sorted(await names(pio, "/")) == ["archive", "inbox"]


def test_mount_paths_and_tables_are_checked() -> None:
    with pytest.raises(ValueError, match="absolute"):
        Mount("shared", "s", "memory://")
    with pytest.raises(ValueError, match=r"'\.\.'"):
        Mount("/a/../b", "s", "memory://")
    assert Mount("/a/b/", "s", "memory://").path == "/a/b"
    with pytest.raises(ValueError, match="mount at /"):
        MountTable([Mount("/a", "a", "memory://")])
    with pytest.raises(ValueError, match="two mounts"):
        MountTable([Mount("/", None, "memory://"), Mount("/a", "a", "memory://"), Mount("/a/", "b", "memory://")])
