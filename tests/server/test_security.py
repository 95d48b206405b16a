"""Secure by default: data-connection theft, listener leaks, timeouts, root escapes."""

from __future__ import annotations

import asyncio
import io
import os
import socket
from pathlib import Path

import psutil
import pytest

from .conftest import (
    HOST,
    STEP,
    expect_error,
    ftp_login,
    in_thread,
    list_lines,
    read_all,
    retr_bytes,
)

# ----------------------------------------------------------------------------- data channel


async def _connect_from(
    source: str, port: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(STEP):
        await loop.sock_connect(sock, (HOST, port))
        return await asyncio.open_connection(sock=sock)


async def test_passive_connection_from_another_address_is_dropped(
    make_server, raw, root: Path
) -> None:
    (root / "f").write_bytes(b"the real data")
    server = await make_server(wait_future_timeout=STEP)
    client = await raw(server)
    port = await client.pasv()
    # a thief on another address connects first: dropped, gets nothing
    thief_reader, thief_writer = await _connect_from("127.0.0.2", port)
    assert await read_all(thief_reader) == b""
    thief_writer.close()
    # the listener is still there for the real client
    await client.expect("RETR f", "150")
    reader, writer = await asyncio.open_connection(HOST, port)
    assert await read_all(reader) == b"the real data"
    writer.close()
    assert (await client.reply()).code == "226"


async def test_thief_arriving_while_transfer_waits(make_server, raw, root: Path) -> None:
    (root / "f").write_bytes(b"data")
    server = await make_server(wait_future_timeout=STEP)
    client = await raw(server)
    port = await client.pasv()
    await client.expect("RETR f", "150")  # the server now waits for a data connection
    thief_reader, thief_writer = await _connect_from("127.0.0.2", port)
    assert await read_all(thief_reader) == b""
    thief_writer.close()
    reader, writer = await asyncio.open_connection(HOST, port)
    assert await read_all(reader) == b"data"
    writer.close()
    assert (await client.reply()).code == "226"


def _listening_ports() -> set[int]:
    connections = psutil.Process().net_connections(kind="tcp")
    return {c.laddr.port for c in connections if c.status == psutil.CONN_LISTEN}


async def test_many_pasv_keep_one_listener(server, raw) -> None:
    client = await raw(server)
    before = _listening_ports()
    ports = set()
    for i in range(30):
        ports.add(
            await client.pasv() if i % 2 else _pasv_port((await client.expect("PASV", "227")).text)
        )
    after = _listening_ports()
    assert len(after - before) == 1, (before, after)
    # every port handed out is either the live listener or closed
    live = after - before
    for port in ports - live:
        with pytest.raises(OSError):
            socket.create_connection((HOST, port), timeout=STEP).close()
    # and the listener still works
    reader, writer = await asyncio.open_connection(HOST, next(iter(live)))
    await client.expect("NLST", "150")
    await read_all(reader)
    writer.close()
    assert (await client.reply()).code == "226"
    # the listener goes away with the session
    await client.expect("QUIT", "221")
    assert await client.at_eof()
    assert not (_listening_ports() & live)


def _pasv_port(text: str) -> int:
    numbers = text[text.index("(") + 1 : text.index(")")].split(",")
    return int(numbers[4]) * 256 + int(numbers[5])


async def test_unused_data_connection_times_out_with_425(make_server, raw, root: Path) -> None:
    (root / "f").write_bytes(b"x")
    server = await make_server(wait_future_timeout=0.3)
    client = await raw(server)
    await client.pasv()
    await client.expect("RETR f", "150")
    assert (await client.reply()).code == "425"
    await client.expect("NOOP", "200")


# ----------------------------------------------------------------------------- timeouts


async def test_login_timeout(make_server, raw) -> None:
    server = await make_server(login_timeout=0.5)
    client = await raw(server, login=False)
    reply = await client.reply()
    assert reply.code == "421"
    assert await client.at_eof()


async def test_login_timeout_counts_from_connect(make_server, raw) -> None:
    """Chatting without logging in does not extend the login deadline forever."""
    server = await make_server(login_timeout=0.5)
    client = await raw(server, login=False)
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        reply = await client.cmd("NOOP")
        if reply.code != "200":
            break
        assert loop.time() - start < STEP
    assert reply.code == "421"
    assert 0.4 < loop.time() - start < STEP
    assert await client.at_eof()


async def test_login_deadline_restarts_after_a_new_user(make_server, root: Path, raw) -> None:
    """A logged-in client that sends USER again gets a fresh login deadline."""
    from .conftest import User

    server = await make_server([User("u", "p", base_path=root)], login_timeout=0.5)
    client = await raw(server, login=False)
    await client.login("u", "p")
    loop = asyncio.get_running_loop()
    start = loop.time()
    while loop.time() - start < 0.6:  # longer than the login timeout, logged in
        await client.expect("NOOP", "200")
    await client.expect("USER u", "331")
    await client.expect("NOOP", "200")
    await client.expect("PASS p", "230")
    await client.expect("PWD", "257")


async def test_idle_timeout_after_login(make_server, raw) -> None:
    server = await make_server(idle_timeout=0.5)
    client = await raw(server)
    await client.expect("NOOP", "200")
    reply = await client.reply()
    assert reply.code == "421"
    assert await client.at_eof()


# ----------------------------------------------------------------------------- confinement


@pytest.fixture
def escape_links(tmp_path: Path, root: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    (root / "inside.txt").write_bytes(b"inside")
    os.symlink(outside, root / "link_dir")
    os.symlink(outside / "secret.txt", root / "link_file")
    os.symlink(outside / "nothing", root / "link_dangling_out")
    os.symlink("inside.txt", root / "link_inside")
    return outside


async def test_symlinks_out_of_the_root_are_refused(server, escape_links: Path) -> None:
    outside = escape_links

    def scenario() -> None:
        ftp = ftp_login(server.server_port)
        expect_error("550", ftp.cwd, "link_dir")
        expect_error("550", retr_bytes, ftp, "link_file")
        expect_error("550", retr_bytes, ftp, "link_dir/secret.txt")
        expect_error("550", ftp.storbinary, "STOR link_file", io.BytesIO(b"pwned"))
        expect_error("550", ftp.storbinary, "STOR link_dir/new.txt", io.BytesIO(b"pwned"))
        expect_error("550", ftp.storbinary, "APPE link_file", io.BytesIO(b"pwned"))
        expect_error("550", ftp.storbinary, "STOR link_dangling_out", io.BytesIO(b"pwned"))
        expect_error("550", ftp.sendcmd, "SIZE link_file")
        expect_error("550", ftp.sendcmd, "MDTM link_file")
        expect_error("550", ftp.sendcmd, "MLST link_file")
        expect_error("550", ftp.sendcmd, "MLST link_dir")
        expect_error("550", ftp.delete, "link_file")
        expect_error("550", ftp.mkd, "link_dir/sub")
        expect_error("550", ftp.rmd, "link_dir")
        expect_error("550", ftp.sendcmd, "RNFR link_file")
        expect_error("550", list_lines, ftp, "LIST link_dir")
        expect_error("550", ftp.nlst, "link_dir")
        # a link that stays inside works
        assert retr_bytes(ftp, "link_inside") == b"inside"
        # listings do not show the escaping links
        shown = " ".join(list_lines(ftp))
        assert "link_inside" in shown and "inside.txt" in shown
        assert "link_dir" not in shown and "link_file" not in shown
        assert "link_dangling_out" not in shown
        assert sorted(ftp.nlst()) == ["inside.txt", "link_inside"]
        assert sorted(name for name, _ in ftp.mlsd()) == ["inside.txt", "link_inside"]
        ftp.quit()

    await in_thread(scenario)
    assert sorted(os.listdir(outside)) == ["secret.txt"]
    assert (outside / "secret.txt").read_bytes() == b"secret"


async def test_rnto_into_an_escaping_link_is_refused(
    server, escape_links: Path, raw, root: Path
) -> None:
    client = await raw(server)
    await client.expect("RNFR inside.txt", "350")
    await client.expect("RNTO link_dir/moved.txt", "550")
    assert (root / "inside.txt").exists()
    assert not (escape_links / "moved.txt").exists()


async def test_dot_dot_and_absolute_paths_stay_in_the_root(
    server, tmp_path: Path, root: Path
) -> None:
    (tmp_path / "outside.txt").write_bytes(b"outside")
    (root / "sub").mkdir()

    def scenario() -> None:
        ftp = ftp_login(server.server_port)
        assert ftp.cwd("../../..").startswith("250")
        assert ftp.pwd() == "/"
        ftp.cwd("sub")
        assert ftp.cwd("../../../../sub").startswith("250")
        assert ftp.pwd() == "/sub"
        expect_error("550", retr_bytes, ftp, "../../etc/passwd")
        expect_error("550", retr_bytes, ftp, "/etc/passwd")
        expect_error("550", retr_bytes, ftp, "../outside.txt")
        expect_error("550", retr_bytes, ftp, "/../outside.txt")
        expect_error("550", ftp.sendcmd, f"SIZE {tmp_path}/outside.txt")
        # writing "above" the root lands inside it
        assert ftp.storbinary("STOR ../../escaped.txt", io.BytesIO(b"e")).startswith("226")
        assert ftp.mkd("../../../made") == "/made"
        ftp.quit()

    await in_thread(scenario)
    assert (root / "escaped.txt").read_bytes() == b"e"
    assert (root / "made").is_dir()
    assert not (tmp_path / "escaped.txt").exists()
    assert (tmp_path / "outside.txt").read_bytes() == b"outside"
