"""An account's file rules in real sessions: names on upload, hidden names, largest file."""

from __future__ import annotations

import ftplib
import io
import os
from pathlib import Path
from typing import Any

import pytest

import gateway
from gateway import User

from .conftest import expect_error, ftp_login, in_thread, list_lines, retr_bytes

MISSING = "550 no such file or directory"


def store(ftp: ftplib.FTP, name: str, data: bytes = b"data", verb: str = "STOR") -> str:
    return ftp.storbinary(f"{verb} {name}", io.BytesIO(data))


def user(root: Path, **policy: Any) -> User:
    return User("u", "pw", base_path=root, **policy)


# ------------------------------------------------------------------------- names created


async def test_denied_names_cannot_be_created(make_server, root: Path) -> None:
    (root / "keep.txt").write_bytes(b"keep")
    server = await make_server([user(root, deny_names=["*.exe", "/locked/*"])])

    def scenario(ftp: ftplib.FTP) -> dict[str, str]:
        got = {
            "stor": expect_error("553", store, ftp, "setup.exe"),
            "stor upper": expect_error("553", store, ftp, "SETUP.EXE"),
            "appe": expect_error("553", store, ftp, "x.exe", b"d", "APPE"),
            "stou": expect_error("553", store, ftp, "y.exe", b"d", "STOU"),
            "mkd": expect_error("553", ftp.mkd, "tools.exe"),
            "path": expect_error("553", store, ftp, "/locked/a.txt"),
        }
        ftp.sendcmd("RNFR keep.txt")
        got["rnto"] = expect_error("553", ftp.sendcmd, "RNTO keep.exe")
        got["allowed"] = store(ftp, "fine.txt")
        return got

    ftp = await in_thread(ftp_login, server.server_port, "u", "pw")
    got = await in_thread(scenario, ftp)
    await in_thread(ftp.quit)
    assert got["stor"] == "553 file name not allowed: 'setup.exe' matches a denied name pattern"
    assert got["stor upper"].startswith("553 file name not allowed: 'SETUP.EXE'")
    assert got["path"] == "553 file name not allowed: '/locked/a.txt' matches a denied name pattern"
    assert got["allowed"].startswith("226")
    assert sorted(os.listdir(root)) == ["fine.txt", "keep.txt"]


async def test_allowed_names_govern_files_not_directories(make_server, root: Path) -> None:
    (root / "photo.jpg").write_bytes(b"jpg")
    (root / "album").mkdir()
    server = await make_server([user(root, allow_names=["*.jpg", "*.mp4"])])

    def scenario(ftp: ftplib.FTP) -> dict[str, str]:
        got = {
            "stor": expect_error("553", store, ftp, "notes.txt"),
            "jpg": store(ftp, "IMG_1.JPG"),
            "mkd": ftp.mkd("2024-01-01"),
        }
        ftp.sendcmd("RNFR photo.jpg")
        got["rnto file"] = expect_error("553", ftp.sendcmd, "RNTO photo.txt")
        ftp.sendcmd("RNFR album")
        got["rnto dir"] = ftp.sendcmd("RNTO holiday")
        # STOU makes up the name itself ("stou" here): checked when the file opens
        got["stou"] = expect_error("553", ftp.storbinary, "STOU", io.BytesIO(b"x"))
        return got

    ftp = await in_thread(ftp_login, server.server_port, "u", "pw")
    got = await in_thread(scenario, ftp)
    await in_thread(ftp.quit)
    assert got["stor"] == "553 file name not allowed: it matches none of the allowed name patterns"
    assert got["jpg"].startswith("226") and got["rnto dir"].startswith("250")
    assert got["mkd"] == "/2024-01-01"
    assert got["stou"].startswith("553 file name not allowed")
    assert sorted(os.listdir(root)) == ["2024-01-01", "IMG_1.JPG", "holiday", "photo.jpg"]


# ---------------------------------------------------------------------------- hidden names


@pytest.fixture
def tree(root: Path) -> Path:
    (root / "a.txt").write_bytes(b"a")
    (root / "tool.exe").write_bytes(b"MZ")
    (root / "private").mkdir()
    (root / "private" / "secret.txt").write_bytes(b"s")
    (root / "sub").mkdir()
    (root / "sub" / "b.EXE").write_bytes(b"MZ")
    (root / "sub" / "c.txt").write_bytes(b"c")
    return root


async def test_hidden_names_are_left_out_of_every_listing(make_server, tree: Path) -> None:
    server = await make_server([user(tree, deny_names=["*.exe", "private"], hide_denied=True)])

    def scenario(ftp: ftplib.FTP) -> dict[str, Any]:
        return {
            "nlst": sorted(ftp.nlst()),
            "nlst sub": sorted(ftp.nlst("sub")),
            "glob": list_lines(ftp, "NLST *.exe"),
            "list": "\n".join(list_lines(ftp, "LIST")),
            "mlsd": sorted(name for name, _facts in ftp.mlsd()),
            "stat": ftp.sendcmd("STAT /"),
            "stat sub": ftp.sendcmd("STAT sub"),
        }

    ftp = await in_thread(ftp_login, server.server_port, "u", "pw")
    got = await in_thread(scenario, ftp)
    await in_thread(ftp.quit)
    assert got["nlst"] == ["a.txt", "sub"]
    assert got["nlst sub"] == ["sub/c.txt"] or got["nlst sub"] == ["c.txt"]
    assert got["glob"] == []
    assert got["mlsd"] == ["a.txt", "sub"]
    for text in (got["list"], got["stat"], got["stat sub"]):
        assert "exe" not in text.lower() and "private" not in text
    assert "a.txt" in got["list"] and "c.txt" in got["stat sub"]


async def test_hidden_names_answer_as_missing_ones(make_server, tree: Path) -> None:
    server = await make_server([user(tree, deny_names=["*.exe", "private"], hide_denied=True)])

    def scenario(ftp: ftplib.FTP) -> dict[str, str]:
        return {
            "retr missing": expect_error("550", retr_bytes, ftp, "missing.txt"),
            "retr": expect_error("550", retr_bytes, ftp, "tool.exe"),
            "retr inside": expect_error("550", retr_bytes, ftp, "private/secret.txt"),
            "size": expect_error("550", ftp.size, "tool.exe"),
            "mdtm": expect_error("550", ftp.sendcmd, "MDTM tool.exe"),
            "mlst": expect_error("550", ftp.sendcmd, "MLST tool.exe"),
            "cwd": expect_error("550", ftp.cwd, "private"),
            "list": expect_error("550", list_lines, ftp, "LIST private"),
            "stat": expect_error("550", ftp.sendcmd, "STAT private"),
            "dele": expect_error("550", ftp.delete, "tool.exe"),
            "rnfr": expect_error("550", ftp.sendcmd, "RNFR tool.exe"),
            "rmd": expect_error("550", ftp.rmd, "private"),
            "chmod": expect_error("550", ftp.sendcmd, "SITE CHMOD 600 tool.exe"),
            "mfmt": expect_error("550", ftp.sendcmd, "MFMT 20200101000000 tool.exe"),
            "visible": retr_bytes(ftp, "sub/c.txt").decode(),
        }

    ftp = await in_thread(ftp_login, server.server_port, "u", "pw")
    got = await in_thread(scenario, ftp)
    await in_thread(ftp.quit)
    assert got.pop("visible") == "c"
    for command, reply in got.items():
        assert reply == MISSING, (command, reply)
    assert (tree / "tool.exe").read_bytes() == b"MZ"  # DELE did nothing
    assert (tree / "private" / "secret.txt").exists()


async def test_denied_names_stay_visible_without_hiding(make_server, tree: Path) -> None:
    server = await make_server([user(tree, deny_names=["*.exe"])])

    def scenario(ftp: ftplib.FTP) -> tuple[list[str], bytes, str]:
        return (sorted(ftp.nlst()), retr_bytes(ftp, "tool.exe"),
                expect_error("553", store, ftp, "tool.exe"))

    ftp = await in_thread(ftp_login, server.server_port, "u", "pw")
    names, content, replaced = await in_thread(scenario, ftp)
    await in_thread(ftp.quit)
    assert names == ["a.txt", "private", "sub", "tool.exe"]
    assert content == b"MZ" and replaced.startswith("553")


# ----------------------------------------------------------------------------- largest file


def upload_refused(ftp: ftplib.FTP, command: str, data: bytes) -> str:
    """Send ``data`` for ``command``; the server cuts it off: return the final reply."""
    conn = ftp.transfercmd(command)
    try:
        conn.sendall(data)
    except OSError:
        pass  # reset by the server as soon as the limit was passed
    finally:
        conn.close()
    try:
        reply = ftp.voidresp()
    except ftplib.error_perm as exc:
        return str(exc)
    raise AssertionError(f"the upload was accepted: {reply}")


LIMIT = 64 * 1024
CUT = "552 exceeded storage allocation: files may be at most 65536 bytes (64 KiB)"


async def test_allo_beyond_the_limit_is_refused_before_any_byte(make_server, root: Path) -> None:
    server = await make_server([user(root, max_file_size=LIMIT)])

    def scenario(ftp: ftplib.FTP) -> dict[str, str]:
        got = {"allo": expect_error("552", ftp.sendcmd, f"ALLO {LIMIT + 1}")}
        # a client that goes on anyway: refused before 150, no data connection used
        got["stor"] = expect_error("552", store, ftp, "big.bin", b"x")
        got["allo ok"] = ftp.sendcmd(f"ALLO {LIMIT}")
        got["stor ok"] = store(ftp, "fits.bin", b"x" * LIMIT)
        got["allo record"] = expect_error("552", ftp.sendcmd, f"ALLO {10 * LIMIT} R 512")
        got["appe"] = expect_error("552", store, ftp, "fits.bin", b"x", "APPE")
        return got

    ftp = await in_thread(ftp_login, server.server_port, "u", "pw")
    got = await in_thread(scenario, ftp)
    await in_thread(ftp.quit)
    assert got["allo"] == CUT and got["stor"] == CUT and got["appe"] == CUT
    assert got["allo ok"].startswith("202") and got["stor ok"].startswith("226")
    assert sorted(os.listdir(root)) == ["fits.bin"]
    assert (root / "fits.bin").stat().st_size == LIMIT


WAYS = pytest.mark.parametrize(
    "way",
    [
        "local",  # local disk written as bytes arrive (the pump)
        "local-threads",  # storage writes that wait (views of the receive buffer)
        "throttled",  # a speed limit: blocks read and written one by one
        "memory",
    ],
)


async def make_limited(make_server, root: Path, way: str, **policy: Any) -> Any:
    options: dict[str, Any] = {}
    base: Any = root
    if way == "local-threads":
        options["path_io_factory"] = gateway.AsyncPathIO
    elif way == "throttled":
        options["read_speed_limit_per_connection"] = 64 * 1024 * 1024
    elif way == "memory":
        options["path_io_factory"] = gateway.MemoryPathIO
        base = "/"
    return await make_server([User("u", "pw", base_path=base, **policy)], **options)


@WAYS
async def test_an_upload_passing_the_limit_is_cut_off_and_nothing_kept(
    make_server, root: Path, way: str
) -> None:
    server = await make_limited(make_server, root, way, max_file_size=LIMIT)

    def scenario(ftp: ftplib.FTP) -> tuple[str, str, list[str]]:
        cut = upload_refused(ftp, "STOR big.bin", os.urandom(16) * (1024 * 1024 // 16))
        fits = store(ftp, "fits.bin", b"y" * LIMIT)
        return cut, fits, sorted(ftp.nlst())

    ftp = await in_thread(ftp_login, server.server_port, "u", "pw")
    cut, fits, names = await in_thread(scenario, ftp)
    await in_thread(ftp.quit)
    assert cut == CUT
    assert fits.startswith("226")
    assert names == ["fits.bin"]
    if way != "memory":
        assert sorted(os.listdir(root)) == ["fits.bin"]  # no temporary left either


@WAYS
async def test_append_and_resume_count_what_the_file_holds(make_server, root: Path, way: str) -> None:
    server = await make_limited(make_server, root, way, max_file_size=LIMIT)
    before = b"o" * (LIMIT - 100)

    def scenario(ftp: ftplib.FTP) -> dict[str, Any]:
        got: dict[str, Any] = {"seed": store(ftp, "log.bin", before)}
        got["appe ok"] = store(ftp, "log.bin", b"a" * 50, "APPE")
        got["appe cut"] = upload_refused(ftp, "APPE log.bin", b"b" * 4096)
        ftp.sendcmd(f"REST {LIMIT - 10}")
        got["rest cut"] = upload_refused(ftp, "STOR log.bin", b"c" * 4096)
        got["content"] = retr_bytes(ftp, "log.bin")
        return got

    ftp = await in_thread(ftp_login, server.server_port, "u", "pw")
    got = await in_thread(scenario, ftp)
    await in_thread(ftp.quit)
    assert got["appe ok"].startswith("226")
    assert got["appe cut"] == CUT and got["rest cut"] == CUT
    # both failed uploads rolled back: the file is what the last good one left
    assert got["content"] == before + b"a" * 50


async def test_limits_of_one_account_leave_another_alone(make_server, root: Path) -> None:
    (root / "a").mkdir()
    (root / "b").mkdir()
    server = await make_server([
        User("small", "pw", base_path=root / "a", max_file_size=10, deny_names=["*.exe"]),
        User("big", "pw", base_path=root / "b"),
    ])

    def scenario() -> tuple[str, str]:
        small = ftp_login(server.server_port, "small", "pw")
        big = ftp_login(server.server_port, "big", "pw")
        try:
            return (store(big, "x.exe", b"z" * 1000),
                    expect_error("553", store, small, "x.exe"))
        finally:
            small.close()
            big.close()

    ok, refused = await in_thread(scenario)
    assert ok.startswith("226") and refused.startswith("553")
    assert (root / "b" / "x.exe").stat().st_size == 1000


async def test_a_closed_session_with_rules_is_freed_without_the_cycle_collector(
    make_server, root: Path
) -> None:
    import asyncio
    import gc
    import weakref

    server = await make_server([user(root, deny_names=["*.exe"], max_file_size=10)])
    ftp = await in_thread(ftp_login, server.server_port, "u", "pw")
    [(task, session)] = list(server.sessions.items())
    storage = weakref.ref(session.path_io)
    gone = weakref.ref(session)
    del session
    gc.disable()
    try:
        await in_thread(ftp.quit)
        await asyncio.wait_for(asyncio.shield(task), 10)
        del task
        await asyncio.sleep(0)
        assert storage() is None and gone() is None
    finally:
        gc.enable()
