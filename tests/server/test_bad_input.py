"""Malformed and hostile input on the control connection: a clear reply, no crash."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

from .conftest import (
    STEP,
    RawClient,
    ftp_login,
    in_thread,
    list_lines,
    read_all,
    reset_socket,
    session_task,
)


async def test_over_long_line_gives_500_and_session_continues(server, raw) -> None:
    client = await raw(server)
    await client.expect("NOOP " + "x" * 5000, "500")
    await client.expect("NOOP", "200")
    # far beyond the limit, in several writes
    await client.send(b"STOR " + b"y" * 100_000)
    await client.send(b"z" * 100_000 + b"\r\n")
    assert (await client.reply()).code == "500"
    await client.expect("PWD", "257")


async def test_line_at_the_limit_is_accepted(server, raw, root: Path) -> None:
    client = await raw(server)
    name = "n" * 200
    (root / name).write_bytes(b"x")
    line = "SIZE " + "./" * ((4096 - 2 - 5 - len(name)) // 2) + name
    assert len(line) + 2 <= 4096
    await client.expect(line, "213")


async def test_line_split_over_many_packets(server, raw) -> None:
    client = await raw(server)
    sock = client.writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for byte in b"NOOP\r\n":
        await client.send(bytes([byte]))
    assert (await client.reply()).code == "200"
    for piece in (b"P", b"W", b"D\r", b"\n"):
        await client.send(piece)
    assert (await client.reply()).code == "257"


async def test_invalid_utf8_in_a_path(server, raw, root: Path) -> None:
    client = await raw(server)
    name = b"caf\xe9-\xc3(.txt"  # latin-1 and a broken UTF-8 sequence
    await client.expect("PASV", "227")
    await client.expect(b"RETR " + name + b"\r\n", "550")  # missing: a plain 550
    await client.expect(b"SIZE " + name + b"\r\n", "550")
    # storing under that name keeps the exact bytes, and the name round-trips
    reader, writer = await client.open_data()
    await client.expect(b"STOR " + name + b"\r\n", "150")
    writer.write(b"payload")
    writer.close()
    assert (await client.reply()).code == "226"
    assert (root / os.fsdecode(name)).read_bytes() == b"payload"
    assert os.fsencode(root / os.fsdecode(name)).endswith(name)
    reader, writer = await client.open_data()
    await client.expect("NLST", "150")
    assert await read_all(reader) == name + b"\r\n"
    writer.close()
    assert (await client.reply()).code == "226"
    await client.expect(b"SIZE " + name + b"\r\n", "213")
    await client.expect(b"MKD d\xff\xff\xfe\r\n", "257")  # IAC IAC is a literal 0xff
    assert (root / os.fsdecode(b"d\xff\xfe")).is_dir()
    await client.expect("NOOP", "200")


async def test_nul_in_a_path_gives_501(server, raw, root: Path) -> None:
    (root / "a").write_bytes(b"x")
    client = await raw(server)
    for verb in ("RETR", "STOR", "CWD", "MKD", "DELE", "SIZE", "MLST", "RNFR", "LIST"):
        await client.expect(f"{verb} a\0b", "501")
    await client.expect("NOOP", "200")
    assert sorted(os.listdir(root)) == ["a"]


async def test_telnet_iac_sequences(server, raw) -> None:
    client = await raw(server)
    # IAC IP, IAC DM before ABOR (RFC 959 4.1.3), option negotiation before NOOP
    await client.expect(b"\xff\xf4\xff\xf2ABOR\r\n", "226")
    await client.expect(b"\xff\xfb\x01\xff\xfd\x03NOOP\r\n", "200")
    await client.expect(b"\xff\xfa\x18\x01\xff\xf0NOOP\r\n", "200")  # subnegotiation
    await client.expect(b"NO\xff\xf1OP\r\n", "200")  # IAC NOP inside the verb
    await client.expect("PWD", "257")
    # IAC IAC is a literal 0xFF byte of a name; an IAC command inside an argument vanishes
    await client.expect(b"MKD d\xff\xffx\r\n", "257")
    await client.expect(b"CWD d\xff\xf1\xff\xffx\r\n", "250")
    assert (await client.expect("PWD", "257")).text.encode("utf-8", "surrogateescape").startswith(
        b'"/d\xffx"'
    )
    await client.expect(b"\xff\xfd\x01\xff\xfa\x18\x00xterm\xff\xf0\xff\xf6NOOP\r\n", "200")
    await client.expect(b"\xff\r\n", "500")  # a lone IAC is a (bad) verb, not a hang
    await client.expect("NOOP", "200")


async def test_empty_lines(server, raw) -> None:
    client = await raw(server)
    await client.expect(b"\r\n", "500")
    await client.expect(b"\n", "500")
    await client.expect(b"   \r\n", "500")
    await client.expect("NOOP", "200")


async def test_pipelined_commands_answered_in_order(server, raw) -> None:
    client = await raw(server, login=False)
    await client.send(
        b"USER anonymous\r\nNOOP\r\nPWD\r\nSYST\r\nTYPE I\r\nBOGUS\r\nMKD\r\nNOOP\r\n"
    )
    codes = [(await client.reply()).code for _ in range(8)]
    assert codes == ["230", "200", "257", "215", "200", "502", "501", "200"]


async def test_disconnect_mid_command_leaves_server_serving(server, raw) -> None:
    before = set(server.sessions)
    half = await raw(server, login=False)
    task = await session_task(server, before)
    await half.send(b"NOO")
    half.writer.close()
    async with asyncio.timeout(STEP):
        await asyncio.wait({task})
    assert task not in server.sessions
    other = await raw(server)
    await other.expect("NOOP", "200")


async def test_disconnect_mid_transfer_stor(server, raw, root: Path) -> None:
    before = set(server.sessions)
    client = await raw(server)
    task = await session_task(server, before)
    reader, writer = await client.open_data()
    await client.expect("STOR half.bin", "150")
    writer.write(b"x" * 300_000)
    await writer.drain()
    # the client vanishes: control and data connections both reset
    reset_socket(writer)
    reset_socket(client.writer)
    async with asyncio.timeout(STEP):
        await asyncio.wait({task})
    assert os.listdir(root) == []  # no file, no partial left behind

    def other() -> list[str]:
        ftp = ftp_login(server.server_port)
        try:
            return list_lines(ftp)
        finally:
            ftp.quit()

    assert await in_thread(other) == []


async def test_disconnect_mid_transfer_retr(server, raw, root: Path) -> None:
    (root / "big").write_bytes(os.urandom(32 * 1024 * 1024))
    before = set(server.sessions)
    client = await raw(server)
    task = await session_task(server, before)
    for type_ in ("I", "A"):  # zero-copy and buffered paths
        await client.expect(f"TYPE {type_}", "200")
        reader, writer = await client.open_data()
        await client.expect("RETR big", "150")
        assert len(await reader.readexactly(65536)) == 65536
        reset_socket(writer)
        assert (await client.reply()).code in ("426", "451")
    await client.expect("NOOP", "200")
    reader, writer = await client.open_data()
    await client.expect("RETR big", "150")
    await reader.readexactly(1000)
    reset_socket(writer)
    reset_socket(client.writer)
    async with asyncio.timeout(STEP):
        await asyncio.wait({task})
    other = await RawClient.connect(server.server_port)
    try:
        await other.login()
        await other.expect("SIZE big", "213")
    finally:
        await other.close()


async def test_garbage_bytes_do_not_crash(server, raw) -> None:
    client = await raw(server, login=False)
    await client.send(bytes(range(1, 256)).replace(b"\n", b"") + b"\r\n")
    assert (await client.reply()).code == "500"
    await client.send(b"\x00\x00\x00\r\n")
    assert (await client.reply()).code == "500"
    await client.expect("NOOP", "200")
