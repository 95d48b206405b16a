"""Checksums on S3: kept in the object's user metadata (one PutObject) or remembered for
its ETag (multipart uploads), answered by HASH/XCRC/XMD5/XSHA* without a GetObject,
computed by reading the object when absent, never stale.

The server reaches the endpoint through the counting proxy of ``benchmarks/s3proxy``,
so "answered without reading the object" is a count of GetObject requests.  Objects
made or changed "behind the server's back" are put with a plain aiobotocore client.
"""

from __future__ import annotations

import asyncio
import ftplib
import hashlib
import io
import os
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from benchmarks.s3proxy import S3CountingProxy
from gateway import Server, User

from .conftest import MIB, PART_SIZE, raw_client
from .seaweed import S3Endpoint

HOST = "127.0.0.1"
STEP = 60.0


def digest(name: str, data: bytes) -> str:
    if name == "crc32":
        return f"{zlib.crc32(data):08x}"
    return hashlib.new(name, data).hexdigest()


@pytest.fixture
async def proxy(s3_service: S3Endpoint) -> AsyncIterator[S3CountingProxy]:
    counting = await S3CountingProxy(s3_service.endpoint_url).start()
    try:
        yield counting
    finally:
        await counting.close()


@pytest.fixture
async def ftp_server(
    s3_service: S3Endpoint, s3_options: dict[str, Any], s3_prefix: str, proxy: S3CountingProxy
) -> AsyncIterator[Server]:
    """User "alice" in ``s3://bucket/<prefix>/alice``, reached through the proxy."""
    root = f"s3://{s3_service.bucket}/{s3_prefix}/alice"
    server = Server([User("alice", "secret", base_path=root)],
                    storage_options=dict(s3_options, endpoint_url=proxy.url))
    await server.start(HOST, 0)
    try:
        yield server
    finally:
        async with asyncio.timeout(STEP):
            await server.close()


class Ftp:
    """One ftplib session; its commands run in a worker thread."""

    def __init__(self, server: Server) -> None:
        assert server.server_port is not None
        self.ftp = ftplib.FTP(timeout=STEP)
        self.ftp.connect(HOST, server.server_port)
        self.ftp.login("alice", "secret")
        self.ftp.voidcmd("TYPE I")

    async def run(self, func: Callable[..., Any], *args: Any) -> Any:
        async with asyncio.timeout(STEP):
            return await asyncio.to_thread(func, *args)

    async def cmd(self, line: str) -> str:
        """The reply to ``line``, or the error reply's text (ftplib raises those)."""
        try:
            reply: str = await self.run(self.ftp.sendcmd, line)
        except ftplib.Error as exc:
            return str(exc)
        return reply

    async def stor(self, name: str, data: bytes, command: str = "STOR") -> None:
        await self.run(self.ftp.storbinary, f"{command} {name}", io.BytesIO(data))

    async def retr(self, name: str) -> bytes:
        chunks: list[bytes] = []
        await self.run(self.ftp.retrbinary, f"RETR {name}", chunks.append)
        return b"".join(chunks)

    def close(self) -> None:
        try:
            self.ftp.quit()
        except (OSError, EOFError, ftplib.Error):
            self.ftp.close()


@pytest.fixture
async def ftp(ftp_server: Server) -> AsyncIterator[Ftp]:
    session = await asyncio.to_thread(Ftp, ftp_server)
    try:
        yield session
    finally:
        await asyncio.to_thread(session.close)


async def gets(proxy: S3CountingProxy, action: Callable[[], Any]) -> tuple[Any, int]:
    """(what ``action()`` returned, the GetObject requests it cost)."""
    await proxy.idle()
    proxy.reset()
    result = await action()
    await proxy.idle()
    return result, proxy.counts().get("GetObject", 0)


def hash_hex(reply: str) -> str:
    assert reply.startswith("213 "), reply
    return reply.split(" ")[3]


async def put_object(endpoint: S3Endpoint, key: str, data: bytes) -> None:
    async with raw_client(endpoint) as client:
        await client.put_object(Bucket=endpoint.bucket, Key=key, Body=data)


# ----------------------------------------------------------------------------- kept, answered


async def test_one_put_keeps_them_in_user_metadata(
    ftp: Ftp, proxy: S3CountingProxy, s3_service: S3Endpoint, s3_prefix: str
) -> None:
    data = os.urandom(300_000)  # below one part: a single PutObject
    await ftp.stor("small.bin", data)
    async with raw_client(s3_service) as client:
        head = await client.head_object(Bucket=s3_service.bucket, Key=f"{s3_prefix}/alice/small.bin")
    # SHA-256 computed as it streamed; the CRC-32 the PutObject carried anyway
    assert head["Metadata"] == {"gateway-sha256": digest("sha256", data),
                                "gateway-crc32": digest("crc32", data)}
    downloaded = await ftp.retr("small.bin")
    assert downloaded == data
    reply, count = await gets(proxy, lambda: ftp.cmd("HASH small.bin"))
    assert reply == f"213 SHA-256 0-{len(data) - 1} {digest('sha256', downloaded)} small.bin"
    assert count == 0
    reply, count = await gets(proxy, lambda: ftp.cmd("XCRC small.bin"))
    assert reply == f"250 {digest('crc32', downloaded).upper()}" and count == 0


async def test_a_multipart_upload_is_answered_from_its_etag(ftp: Ftp, proxy: S3CountingProxy) -> None:
    data = os.urandom(2 * PART_SIZE + 12345)
    await ftp.stor("big.bin", data)
    downloaded = await ftp.retr("big.bin")
    assert downloaded == data
    reply, count = await gets(proxy, lambda: ftp.cmd("HASH big.bin"))
    assert hash_hex(reply) == digest("sha256", downloaded) and count == 0
    # the object's CRC-32, combined from its parts' own
    reply, count = await gets(proxy, lambda: ftp.cmd("XCRC big.bin"))
    assert reply == f"250 {digest('crc32', downloaded).upper()}" and count == 0
    # not computed at upload: read once, then remembered for this ETag
    reply, count = await gets(proxy, lambda: ftp.cmd("XMD5 big.bin"))
    assert reply == f"250 {digest('md5', downloaded).upper()}" and count >= 1
    reply, count = await gets(proxy, lambda: ftp.cmd("XMD5 big.bin"))
    assert reply == f"250 {digest('md5', downloaded).upper()}" and count == 0


async def test_every_command_agrees_with_hashlib(ftp: Ftp) -> None:
    data = os.urandom(MIB + 777)
    await ftp.stor("all.bin", data)
    downloaded = await ftp.retr("all.bin")
    for name, key in (("SHA-512", "sha512"), ("SHA-1", "sha1"), ("MD5", "md5"), ("CRC32", "crc32"),
                      ("SHA-256", "sha256")):
        assert await ftp.cmd(f"OPTS HASH {name}") == f"200 {name}"
        assert hash_hex(await ftp.cmd("HASH all.bin")) == digest(key, downloaded)
    for verb, key in (("XCRC", "crc32"), ("XMD5", "md5"), ("XSHA1", "sha1"), ("XSHA256", "sha256"),
                      ("XSHA512", "sha512")):
        assert await ftp.cmd(f"{verb} all.bin") == f"250 {digest(key, downloaded).upper()}"


async def test_computed_when_absent_then_remembered(
    ftp: Ftp, proxy: S3CountingProxy, s3_service: S3Endpoint, s3_prefix: str
) -> None:
    data = os.urandom(400_000)
    await put_object(s3_service, f"{s3_prefix}/alice/outside.bin", data)
    reply, count = await gets(proxy, lambda: ftp.cmd("HASH outside.bin"))
    assert hash_hex(reply) == digest("sha256", data) and count >= 1
    reply, count = await gets(proxy, lambda: ftp.cmd("HASH outside.bin"))
    assert hash_hex(reply) == digest("sha256", data) and count == 0


async def test_never_stale(ftp: Ftp, s3_service: S3Endpoint, s3_prefix: str) -> None:
    key = f"{s3_prefix}/alice/f.bin"
    first = os.urandom(200_000)
    await ftp.stor("f.bin", first)
    assert hash_hex(await ftp.cmd("HASH f.bin")) == digest("sha256", first)
    # APPE makes a new object: the old metadata goes with the old object
    await ftp.stor("f.bin", b"tail", command="APPE")
    current = await ftp.retr("f.bin")
    assert current == first + b"tail"
    assert hash_hex(await ftp.cmd("HASH f.bin")) == digest("sha256", current)
    # replaced behind the server's back, same size
    other = os.urandom(len(current))
    await put_object(s3_service, key, other)
    assert hash_hex(await ftp.cmd("HASH f.bin")) == digest("sha256", other)
    assert await ftp.cmd("XCRC f.bin") == f"250 {digest('crc32', other).upper()}"
    # a multipart object remembered, then replaced behind the server's back
    big = os.urandom(PART_SIZE + 1)
    await ftp.stor("f.bin", big)
    assert hash_hex(await ftp.cmd("HASH f.bin")) == digest("sha256", big)
    await put_object(s3_service, key, b"small now")
    assert hash_hex(await ftp.cmd("HASH f.bin")) == digest("sha256", b"small now")


async def test_rename_keeps_them(ftp: Ftp, proxy: S3CountingProxy) -> None:
    small, big = os.urandom(100_000), os.urandom(PART_SIZE + 99)
    await ftp.stor("small.bin", small)
    await ftp.stor("big.bin", big)
    await ftp.run(ftp.ftp.rename, "small.bin", "small2.bin")
    await ftp.run(ftp.ftp.rename, "big.bin", "big2.bin")
    reply, count = await gets(proxy, lambda: ftp.cmd("HASH small2.bin"))
    assert hash_hex(reply) == digest("sha256", small) and count == 0
    # what this process remembered for the multipart upload's ETag went along
    reply, count = await gets(proxy, lambda: ftp.cmd("HASH big2.bin"))
    assert hash_hex(reply) == digest("sha256", big) and count == 0
    assert await ftp.cmd("HASH small.bin") == "550 no such file or directory"


async def test_ranges_and_errors(ftp: Ftp) -> None:
    data = os.urandom(50_000)
    await ftp.stor("r.bin", data)
    await ftp.run(ftp.ftp.mkd, "dir")
    assert (await ftp.cmd("RANG 1000 1999")).startswith("350 ")
    reply = await ftp.cmd("HASH r.bin")
    assert reply == f"213 SHA-256 1000-1999 {digest('sha256', data[1000:2000])} r.bin"
    assert await ftp.cmd("XCRC r.bin 10 20") == f"250 {digest('crc32', data[10:20]).upper()}"
    assert (await ftp.cmd("HASH nothing.bin")).startswith("550")
    assert (await ftp.cmd("HASH dir")).startswith("553")
    assert (await ftp.cmd("XCRC dir")).startswith("550")
    assert (await ftp.cmd("XCRC r.bin 0 50001")).startswith("550")


@pytest.mark.parametrize(
    ("algorithm", "size", "derived"),
    [("CRC32", 100_000, "crc32"), ("CRC32", 2 * PART_SIZE + 3, "crc32"),
     ("MD5", 100_000, "md5"), ("MD5", PART_SIZE + 3, None)],
)
async def test_what_the_parts_checksums_give_for_free(
    s3_service: S3Endpoint, s3_options: dict[str, Any], s3_prefix: str,
    algorithm: str, size: int, derived: str | None,
) -> None:
    """The checksums every part carries anyway (``checksum_algorithm``) give the whole
    object's: its CRC-32 combined from its parts', or the MD5 of a single part."""
    from backends import backend_for_root

    options = dict(s3_options, checksum_algorithm=algorithm)
    factory, root = backend_for_root(f"s3://{s3_service.bucket}/{s3_prefix}/direct", options)
    try:
        pio = factory()
        data = os.urandom(size)
        async with pio.open(root / "x.bin", "wb") as file:
            await file.write(data)
            await file.keep_checksums({"sha256": digest("sha256", data)})
        stored = await pio.stored_checksums(root / "x.bin")
        assert stored is not None and stored.size == size
        expected = {"sha256": digest("sha256", data)}
        if derived is not None:
            expected[derived] = digest(derived, data)
        assert stored.values == expected
    finally:
        await factory.aclose()
