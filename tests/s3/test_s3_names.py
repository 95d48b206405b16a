"""Names on S3 that FTP cannot carry as they are: keys with line breaks (made behind the
gateway's back) and client names that are not valid UTF-8 (which no S3 key can be).

A raw control connection sends the exact bytes; the bucket is read with a plain
aiobotocore client.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway import Server, User
from tests.server.conftest import RawClient

from .conftest import all_keys, raw_client
from .seaweed import S3Endpoint

HOST = "127.0.0.1"
STEP = 30.0


@pytest.fixture
async def alice(s3_service: S3Endpoint, s3_options: dict[str, Any], s3_prefix: str) -> AsyncIterator[tuple[Server, str]]:
    """A server whose user "alice" lives under ``<prefix>/alice/``; (server, key prefix)."""
    users = [User("alice", "secret", base_path=f"s3://{s3_service.bucket}/{s3_prefix}/alice")]
    server = Server(users, storage_options=s3_options)
    await server.start(HOST, 0)
    try:
        yield server, f"{s3_prefix}/alice/"
    finally:
        async with asyncio.timeout(STEP):
            await server.close()


async def connect(server: Server) -> RawClient:
    client = await RawClient.connect(server.server_port)
    await client.login("alice", "secret")
    return client


async def listing(client: RawClient, command: str) -> bytes:
    reader, writer = await client.open_data()
    await client.expect(command, "150")
    async with asyncio.timeout(STEP):
        data = await reader.read()
    writer.close()
    reply = await client.reply()
    assert reply.code == "226", reply
    return data


async def test_non_utf8_name_is_refused_for_good_not_451(alice, s3_service) -> None:
    server, prefix = alice
    client = await connect(server)
    try:
        # a latin-1 device's name: byte 0xE9 is not UTF-8, and an S3 key must be
        for command in (b"MKD caf\xe9\r\n", b"STOR caf\xe9.txt\r\n", b"RETR caf\xe9.txt\r\n"):
            if command.startswith(b"STOR"):
                await client.pasv()
            reply = await client.cmd(command)
            # 553: permanent, so clients stop retrying (451 made them retry forever)
            assert reply.code == "553", (command, reply)
        await client.expect("NOOP", "200")
    finally:
        await client.close()
    async with raw_client(s3_service) as s3:
        assert await all_keys(s3, s3_service.bucket, prefix) == []


async def test_key_with_line_breaks_is_one_entry_in_every_listing(alice, s3_service) -> None:
    server, prefix = alice
    async with raw_client(s3_service) as s3:
        await s3.put_object(Bucket=s3_service.bucket, Key=prefix + "nl\nforged.txt", Body=b"x")
        await s3.put_object(Bucket=s3_service.bucket, Key=prefix + "cr\rforged.txt", Body=b"y")
    client = await connect(server)
    try:
        for command in ("NLST", "LIST", "MLSD"):
            lines = (await listing(client, command)).split(b"\r\n")
            assert lines[-1] == b"", (command, lines)
            names = sorted(line.rsplit(b" ", 1)[-1] if command != "NLST" else line for line in lines[:-1])
            assert names == [b"cr\0forged.txt", b"nl\0forged.txt"], (command, lines)
            assert not any(b"\n" in line or b"\r" in line for line in lines), (command, lines)
        reply = await client.cmd("STAT /")
        assert reply.code == "212", reply
        assert sum("forged.txt" in line for line in reply.lines) == 2, reply
        assert not any(line.startswith("forged") for line in reply.lines), reply
    finally:
        await client.close()


def test_non_utf8_names_map_to_553_by_cause() -> None:
    """The one table: a name storage cannot encode is refused for good (553), whether
    the backend says so with EILSEQ (S3 here) or lets the UnicodeError through."""
    import errno

    from backends.errors import PathIOError
    from backends.s3.keys import locate
    from gateway.server.storage_errors import reply_for_storage_error

    with pytest.raises(OSError) as caught:
        locate("/bucket/dir/caf\udce9.txt")
    assert caught.value.errno == errno.EILSEQ
    assert locate("/bucket/dir/café.txt").key == "dir/café.txt"
    for cause in (caught.value, UnicodeEncodeError("utf-8", "\udce9", 0, 1, "surrogates not allowed")):
        try:
            raise PathIOError("storage failed") from cause
        except PathIOError as exc:
            code, text = reply_for_storage_error(exc)
        assert code == "553" and text.startswith("file name not allowed"), (cause, code, text)
