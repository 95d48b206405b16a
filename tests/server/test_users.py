"""Users, permissions, connection limits and throttles."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

import gateway as aioftp

from .conftest import (
    Permission,
    User,
    expect_error,
    ftp_connect,
    ftp_login,
    in_thread,
    list_lines,
    retr_bytes,
)


@pytest.fixture
def tutorial_users():
    """The server tutorial's users, verbatim (``import gateway as aioftp``)."""
    users = (
        aioftp.User(
            "Guido",
            "secret_password",
            home_path="/Guido",
            permissions=(
                aioftp.Permission("/", readable=False, writable=False),
                aioftp.Permission("/Guido", readable=True, writable=True),
            ),
        ),
        aioftp.User(
            home_path="/anon",
            permissions=(
                aioftp.Permission("/", readable=False, writable=False),
                aioftp.Permission("/anon", readable=True),
            ),
        ),
    )
    return users


async def test_server_tutorial_guido_and_anon(tmp_path: Path, monkeypatch, tutorial_users) -> None:
    # The tutorial's users have no base_path: the real root is the working directory.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "Guido").mkdir()
    (tmp_path / "anon").mkdir()
    (tmp_path / "anon" / "readme.txt").write_bytes(b"anon data")
    (tmp_path / "top.txt").write_bytes(b"top")
    server = aioftp.Server(tutorial_users)
    await server.start("127.0.0.1", 0)
    try:

        def guido() -> None:
            ftp = ftp_login(server.server_port, "Guido", "secret_password")
            assert ftp.pwd() == "/Guido"
            assert ftp.storbinary("STOR mine.txt", io.BytesIO(b"guido")).startswith("226")
            assert ftp.mkd("sub") == "/Guido/sub"
            assert sorted(ftp.nlst()) == ["mine.txt", "sub"]
            assert retr_bytes(ftp, "mine.txt") == b"guido"
            # the root is neither writable nor readable
            expect_error("550", ftp.storbinary, "STOR /evil.txt", io.BytesIO(b"x"))
            expect_error("550", ftp.mkd, "/evil")
            expect_error("550", ftp.delete, "/top.txt")
            expect_error("550", list_lines, ftp, "LIST /")
            expect_error("550", retr_bytes, ftp, "/top.txt")
            expect_error("550", ftp.cwd, "/")
            assert ftp.pwd() == "/Guido"
            ftp.quit()

        def anon() -> None:
            ftp = ftp_login(server.server_port)  # any login is the anonymous user
            assert ftp.pwd() == "/anon"
            assert ftp.nlst() == ["readme.txt"]
            assert retr_bytes(ftp, "readme.txt") == b"anon data"
            # Permission("/anon", readable=True) keeps aioftp's default writable=True,
            # so the tutorial's "only read permission" is not what its code says.
            assert ftp.storbinary("STOR new.txt", io.BytesIO(b"x")).startswith("226")
            expect_error("550", ftp.storbinary, "STOR /new.txt", io.BytesIO(b"x"))
            expect_error("550", ftp.storbinary, "STOR /Guido/new.txt", io.BytesIO(b"x"))
            expect_error("550", list_lines, ftp, "LIST /")
            expect_error("550", retr_bytes, ftp, "/Guido/mine.txt")
            expect_error("550", ftp.cwd, "/Guido")
            ftp.quit()

        def wrong_password() -> None:
            ftp = ftp_connect(server.server_port)
            expect_error("530", ftp.login, "Guido", "not it")
            ftp.close()

        await in_thread(guido)
        await in_thread(anon)
        await in_thread(wrong_password)
    finally:
        await server.close()
    assert (tmp_path / "Guido" / "mine.txt").read_bytes() == b"guido"
    assert not (tmp_path / "evil.txt").exists()
    assert (tmp_path / "anon" / "new.txt").read_bytes() == b"x"
    assert not (tmp_path / "new.txt").exists()
    assert not (tmp_path / "Guido" / "new.txt").exists()
    assert (tmp_path / "top.txt").exists()


async def test_base_path_and_home_path(make_server, tmp_path: Path) -> None:
    base = tmp_path / "alice_root"
    (base / "home" / "docs").mkdir(parents=True)
    (base / "home" / "docs" / "d.txt").write_bytes(b"doc")
    (tmp_path / "outside.txt").write_bytes(b"outside")
    server = await make_server([User("alice", None, base_path=base, home_path="/home")])

    def scenario() -> None:
        ftp = ftp_login(server.server_port, "alice")
        assert ftp.pwd() == "/home"
        assert ftp.nlst() == ["docs"]
        assert retr_bytes(ftp, "docs/d.txt") == b"doc"
        assert retr_bytes(ftp, "/home/docs/d.txt") == b"doc"
        assert ftp.storbinary("STOR /top.txt", io.BytesIO(b"t")).startswith("226")
        expect_error("550", retr_bytes, ftp, "/../outside.txt")
        expect_error("550", retr_bytes, ftp, "../../outside.txt")
        ftp.cwd("/")
        assert sorted(ftp.nlst()) == ["home", "top.txt"]
        ftp.quit()

    await in_thread(scenario)
    assert (base / "top.txt").read_bytes() == b"t"


async def test_nearest_parent_permission_wins(make_server, root: Path) -> None:
    for d in ("pub", "pub/ro", "pub/ro/rw", "pubx"):
        (root / d).mkdir()
    users = [
        User(
            base_path=root,
            permissions=[
                Permission("/", readable=True, writable=False),
                Permission("/pub", writable=True),
                Permission("/pub/ro", writable=False),
                Permission("/pub/ro/rw", writable=True),
            ],
        )
    ]
    server = await make_server(users)

    def scenario() -> None:
        ftp = ftp_login(server.server_port)

        def stor(path: str) -> str:
            return ftp.storbinary(f"STOR {path}", io.BytesIO(b"x"))

        assert stor("/pub/a").startswith("226")
        assert stor("/pub/ro/rw/b").startswith("226")
        expect_error("550", stor, "/c")
        expect_error("550", stor, "/pub/ro/d")
        expect_error("550", stor, "/pubx/e")  # "/pub" does not cover "/pubx"
        ftp.quit()

    await in_thread(scenario)
    assert (root / "pub" / "a").exists() and (root / "pub" / "ro" / "rw" / "b").exists()
    assert not (root / "c").exists() and not (root / "pub" / "ro" / "d").exists()
    assert not (root / "pubx" / "e").exists()


async def test_maximum_connections_per_server(make_server, raw) -> None:
    server = await make_server(maximum_connections=2)
    first = await raw(server, login=False)
    await raw(server, login=False)
    third = await raw(server, login=False, greeting=False)
    reply = await third.reply()
    assert reply.code == "421"
    assert await third.at_eof()
    # a freed slot is available again
    await first.expect("QUIT", "221")
    assert await first.at_eof()
    fourth = await raw(server)  # greeted with 220 and logs in
    await fourth.expect("NOOP", "200")


async def test_maximum_connections_per_user(make_server, root: Path, raw) -> None:
    users = [
        User("solo", "pw", base_path=root, maximum_connections=1),
        User("other", None, base_path=root),
    ]
    server = await make_server(users)
    first = await raw(server, login=False)
    await first.login("solo", "pw")
    second = await raw(server, login=False)
    # USER answers alike whatever the slots; the limit applies after the password
    await second.expect("USER solo", "331")
    await second.expect("PASS pw", "530")
    await second.login("other")  # other users are not limited by solo's count
    await second.expect("NOOP", "200")
    await first.expect("QUIT", "221")
    assert await first.at_eof()
    third = await raw(server, login=False)
    await third.login("solo", "pw")
    await third.expect("PWD", "257")


async def test_failed_logins_do_not_leak_user_slots(make_server, root: Path, raw) -> None:
    server = await make_server([User("solo", "pw", base_path=root, maximum_connections=1)])
    for _ in range(3):
        client = await raw(server, login=False)
        await client.expect("USER solo", "331")
        await client.expect("PASS wrong", "530")
        await client.expect("QUIT", "221")
        assert await client.at_eof()
    client = await raw(server, login=False)
    await client.login("solo", "pw")


SIZE = 256 * 1024
RATE = 128 * 1024
#: The first chunk may pass unthrottled; the rest must wait: at least ~1.5 s.
LOWER_BOUND = 1.4


async def _timed_download(port: int, name: str, **login: str) -> float:
    def scenario() -> float:
        ftp = ftp_login(port, **login)
        start = time.perf_counter()
        data = retr_bytes(ftp, name)
        elapsed = time.perf_counter() - start
        assert len(data) == SIZE
        ftp.quit()
        return elapsed

    return await in_thread(scenario)


async def _timed_upload(port: int, name: str, **login: str) -> float:
    def scenario() -> float:
        ftp = ftp_login(port, **login)
        start = time.perf_counter()
        assert ftp.storbinary(f"STOR {name}", io.BytesIO(b"u" * SIZE)).startswith("226")
        elapsed = time.perf_counter() - start
        ftp.quit()
        return elapsed

    return await in_thread(scenario)


async def test_server_throttle_download(make_server, root: Path) -> None:
    (root / "big").write_bytes(b"d" * SIZE)
    server = await make_server(write_speed_limit=RATE)
    assert await _timed_download(server.server_port, "big") >= LOWER_BOUND


async def test_server_throttle_upload(make_server, root: Path) -> None:
    server = await make_server(read_speed_limit=RATE)
    assert await _timed_upload(server.server_port, "up") >= LOWER_BOUND
    assert (root / "up").read_bytes() == b"u" * SIZE


async def test_server_per_connection_throttle(make_server, root: Path) -> None:
    (root / "big").write_bytes(b"d" * SIZE)
    server = await make_server(write_speed_limit_per_connection=RATE)
    assert await _timed_download(server.server_port, "big") >= LOWER_BOUND


async def test_user_throttle(make_server, root: Path) -> None:
    (root / "big").write_bytes(b"d" * SIZE)
    users = [
        User("slow", None, base_path=root, write_speed_limit=RATE),
        User("slowconn", None, base_path=root, read_speed_limit_per_connection=RATE),
        User("fast", None, base_path=root),
    ]
    server = await make_server(users)
    assert await _timed_download(server.server_port, "big", user="slow") >= LOWER_BOUND
    assert await _timed_upload(server.server_port, "up", user="slowconn") >= LOWER_BOUND
    # the limit belongs to the user, not to the server
    assert await _timed_download(server.server_port, "big", user="fast") < LOWER_BOUND
