"""Two accounts mounting one folder share its files: an upload in progress through
one account's tree makes the same file busy for the other (450), as within one tree."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from backends.mounts import Mount
from gateway import Server, User

HOST = "127.0.0.1"
STEP = 20.0


async def _reply(reader: asyncio.StreamReader) -> str:
    while True:
        line = (await reader.readline()).decode()
        assert line, "control connection closed"
        if re.match(r"^\d{3} ", line):
            return line.strip()


async def _login(port: int, name: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(HOST, port)
    assert (await _reply(reader)).startswith("220")
    for command in (f"USER {name}", "PASS pw", "TYPE I"):
        writer.write(f"{command}\r\n".encode())
        assert (await _reply(reader))[0] in "23"
    return reader, writer


async def _passive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    writer.write(b"EPSV\r\n")
    reply = await _reply(reader)
    match = re.search(r"\(\|\|\|(\d+)\|\)", reply)
    assert match, reply
    return int(match.group(1))


async def test_an_upload_through_one_tree_makes_the_file_busy_in_the_other(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    users = [
        User(name, "pw", base_path=tmp_path / name,
             mounts=[Mount(mount_path, "shared", str(shared))])
        for name, mount_path in (("alice", "/team"), ("bob", "/common"))
    ]
    server = Server(users)
    await server.start(HOST, 0)
    try:
        async with asyncio.timeout(STEP):
            alice_reader, alice = await _login(server.server_port, "alice")
            bob_reader, bob = await _login(server.server_port, "bob")
            port = await _passive(alice_reader, alice)
            alice.write(b"STOR team/report.bin\r\n")
            _, data = await asyncio.open_connection(HOST, port)
            assert (await _reply(alice_reader)).startswith("150")
            data.write(b"first half")
            await data.drain()

            await _passive(bob_reader, bob)
            bob.write(b"STOR common/report.bin\r\n")
            assert (await _reply(bob_reader)).startswith("450")

            data.write(b", second half")
            data.close()
            assert (await _reply(alice_reader)).startswith("226")
            assert (shared / "report.bin").read_bytes() == b"first half, second half"
            for writer in (alice, bob):
                writer.close()
    finally:
        await server.close()
