"""FTP through ``gateway.Server`` with users rooted in S3 (``base_path="s3://bucket/prefix"``).

The server runs in the test's loop; ftplib (blocking) runs in a worker thread.  What
the FTP client cannot see (open multipart uploads, the keys themselves) is checked
with a plain aiobotocore client behind the gateway's back.
"""

from __future__ import annotations

import asyncio
import ftplib
import hashlib
import io
import os
import socket
import struct
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from backends import backend_for_root
from backends.s3 import WRITE_BUFFERS, S3Settings
from backends.s3 import client as s3_client
from gateway import Server, User
from tests.proxy import FaultProxy

from .conftest import MIB, PART_SIZE, PARTS_IN_FLIGHT, all_keys, open_uploads, raw_client
from .seaweed import S3Endpoint

HOST = "127.0.0.1"
STEP = 30.0


@pytest.fixture
async def ftp_server(
    s3_service: S3Endpoint, s3_options: dict[str, Any], s3_prefix: str
) -> AsyncIterator[Server]:
    """A server whose user "alice" lives in ``s3://bucket/<prefix>/alice``."""
    users = [User("alice", "secret", base_path=f"s3://{s3_service.bucket}/{s3_prefix}/alice")]
    server = Server(users, storage_options=s3_options)
    await server.start(HOST, 0)
    try:
        yield server
    finally:
        async with asyncio.timeout(STEP):
            await server.close()


def login(server: Server, user: str = "alice", password: str = "secret") -> ftplib.FTP:
    ftp = ftplib.FTP(timeout=STEP)
    ftp.connect(HOST, server.server_port)
    ftp.login(user, password)
    return ftp


async def in_thread(func: Callable[..., Any], *args: Any) -> Any:
    async with asyncio.timeout(60):
        return await asyncio.to_thread(func, *args)


def retr(ftp: ftplib.FTP, name: str, rest: int | None = None) -> bytes:
    chunks: list[bytes] = []
    ftp.retrbinary("RETR " + name, chunks.append, rest=rest)
    return b"".join(chunks)


def lines(ftp: ftplib.FTP, command: str) -> list[str]:
    found: list[str] = []
    ftp.retrlines(command, found.append)
    return found


def error_code(func: Callable[..., Any], *args: Any) -> str:
    try:
        func(*args)
    except ftplib.all_errors as exc:
        return str(exc)[:3]
    raise AssertionError("the command succeeded")


def alice_prefix(s3_service: S3Endpoint, s3_prefix: str) -> tuple[str, str]:
    return s3_service.bucket, f"{s3_prefix}/alice/"


async def test_mkd_cwd_list_mlsd_size_mdtm(ftp_server, s3_service, s3_prefix):
    def scenario() -> dict[str, Any]:
        ftp = login(ftp_server)
        try:
            assert ftp.pwd() == "/"
            assert lines(ftp, "NLST") == []  # the root exists before anything is in it
            ftp.mkd("docs")
            ftp.cwd("docs")
            assert ftp.pwd() == "/docs"
            ftp.storbinary("STOR note.txt", io.BytesIO(b"hello s3"))
            ftp.cwd("/")
            return {
                "list": lines(ftp, "LIST"),
                "mlsd": dict(ftp.mlsd("docs", facts=["type", "size"])),
                "size": ftp.size("docs/note.txt"),
                "mdtm": ftp.voidcmd("MDTM docs/note.txt"),
                "cwd_missing": error_code(ftp.cwd, "nope"),
            }
        finally:
            ftp.quit()

    got = await in_thread(scenario)
    assert len(got["list"]) == 1 and got["list"][0].startswith("d") and got["list"][0].endswith(" docs")
    assert got["mlsd"]["note.txt"]["type"] == "file" and got["mlsd"]["note.txt"]["size"] == "8"
    assert got["size"] == 8
    assert got["mdtm"].startswith("213 2")
    assert got["cwd_missing"] == "550"
    bucket, prefix = alice_prefix(s3_service, s3_prefix)
    async with raw_client(s3_service) as client:
        assert sorted(await all_keys(client, bucket, prefix)) == [
            prefix + "docs/", prefix + "docs/note.txt"
        ]


async def test_stor_retr_40_mib_in_bounded_memory(ftp_server, s3_service, s3_prefix):
    data = os.urandom(40 * MIB)
    expected = hashlib.sha256(data).hexdigest()

    def scenario() -> str:
        ftp = login(ftp_server)
        try:
            ftp.storbinary("STOR big.bin", io.BytesIO(data), blocksize=256 * 1024)
            digest = hashlib.sha256()
            ftp.retrbinary("RETR big.bin", digest.update, blocksize=256 * 1024)
            return digest.hexdigest()
        finally:
            ftp.quit()

    WRITE_BUFFERS.reset()
    assert await in_thread(scenario) == expected
    # the upload never held more than part_size x parts_in_flight, for 8 parts
    assert 0 < WRITE_BUFFERS.writer_peak <= PART_SIZE * PARTS_IN_FLIGHT
    bucket, prefix = alice_prefix(s3_service, s3_prefix)
    async with raw_client(s3_service) as client:
        head = await client.head_object(Bucket=bucket, Key=prefix + "big.bin")
    assert head["ContentLength"] == len(data)
    assert head["ETag"].strip('"').endswith("-8")


async def test_rest_retr_and_appe(ftp_server):
    small = os.urandom(1000)
    large = os.urandom(PART_SIZE + 4321)

    def scenario() -> dict[str, bytes]:
        ftp = login(ftp_server)
        try:
            ftp.storbinary("STOR small", io.BytesIO(small))
            ftp.storbinary("STOR large", io.BytesIO(large))
            ftp.storbinary("APPE small", io.BytesIO(b"+more"))
            ftp.storbinary("APPE large", io.BytesIO(b"+tail"))  # server-side copy of part 1
            ftp.storbinary("APPE fresh", io.BytesIO(b"new"))
            return {
                "rest": retr(ftp, "large", rest=PART_SIZE),
                "small": retr(ftp, "small"),
                "large": retr(ftp, "large"),
                "fresh": retr(ftp, "fresh"),
            }
        finally:
            ftp.quit()

    got = await in_thread(scenario)
    assert got["small"] == small + b"+more"
    assert hashlib.sha256(got["large"]).digest() == hashlib.sha256(large + b"+tail").digest()
    assert got["rest"] == (large + b"+tail")[PART_SIZE:]
    assert got["fresh"] == b"new"


async def test_stor_reset_mid_transfer_leaves_nothing(ftp_server, s3_service, s3_prefix):
    def scenario() -> str:
        ftp = login(ftp_server)
        try:
            ftp.voidcmd("TYPE I")
            conn = ftp.transfercmd("STOR partial.bin")
            block = os.urandom(MIB)
            for _ in range(3 * PART_SIZE // MIB):  # enough for parts to be uploaded
                conn.sendall(block)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()  # RST: the client vanished mid-transfer
            code = error_code(ftp.voidresp)
            ftp.voidcmd("NOOP")  # the session goes on
            return code
        finally:
            ftp.quit()

    code = await in_thread(scenario)
    assert code[0] in "45", code
    bucket, prefix = alice_prefix(s3_service, s3_prefix)
    async with raw_client(s3_service) as client:
        assert await open_uploads(client, bucket, prefix) == []
        assert await all_keys(client, bucket, prefix) == []


async def test_rename_delete_and_rmd(ftp_server, s3_service, s3_prefix):
    def scenario() -> dict[str, Any]:
        ftp = login(ftp_server)
        try:
            ftp.mkd("a")
            ftp.mkd("a/b")
            ftp.storbinary("STOR a/b/f", io.BytesIO(b"F"))
            ftp.storbinary("STOR g", io.BytesIO(b"G"))
            ftp.rename("g", "a/g2")  # a file
            ftp.rename("a", "z")  # a directory tree
            result = {
                "root": sorted(ftp.nlst()),
                "z": sorted(ftp.nlst("z")),
                "f": retr(ftp, "z/b/f"),
                "rmd_full": error_code(ftp.rmd, "z"),
            }
            ftp.delete("z/g2")
            ftp.delete("z/b/f")
            ftp.rmd("z/b")
            ftp.rmd("z")
            result["after"] = ftp.nlst()
            result["dele_missing"] = error_code(ftp.delete, "nope")
            return result
        finally:
            ftp.quit()

    got = await in_thread(scenario)
    assert got["root"] == ["z"]
    assert [name.rsplit("/", 1)[-1] for name in got["z"]] == ["b", "g2"]
    assert got["f"] == b"F"
    assert got["rmd_full"] == "550"
    assert got["after"] == [] and got["dele_missing"] == "550"
    bucket, prefix = alice_prefix(s3_service, s3_prefix)
    async with raw_client(s3_service) as client:
        assert await all_keys(client, bucket, prefix) == []


async def test_users_on_disk_memory_and_s3_do_not_see_each_other(
    s3_service, s3_options, s3_prefix, tmp_path: Path
):
    (tmp_path / "bob").mkdir()
    memory, carol_root = backend_for_root(f"memory:///{s3_prefix}/carol")
    await memory().mkdir(carol_root, parents=True)
    users = [
        User("alice", "a", base_path=f"s3://{s3_service.bucket}/{s3_prefix}/alice"),
        User("bob", "b", base_path=tmp_path / "bob"),
        User("carol", "c", base_path=f"memory:///{s3_prefix}/carol"),
    ]
    server = Server(users, storage_options=s3_options)
    await server.start(HOST, 0)

    def scenario(user: str, password: str) -> list[str]:
        ftp = login(server, user, password)
        try:
            ftp.storbinary(f"STOR {user}.txt", io.BytesIO(user.encode()))
            return sorted(ftp.nlst())
        finally:
            ftp.quit()

    try:
        seen = await asyncio.gather(
            *(in_thread(scenario, name, pw) for name, pw in (("alice", "a"), ("bob", "b"), ("carol", "c")))
        )
    finally:
        await server.close()
    assert seen == [["alice.txt"], ["bob.txt"], ["carol.txt"]]
    assert (tmp_path / "bob" / "bob.txt").read_bytes() == b"bob"
    # closing the server released its S3 connection pool
    assert S3Settings.from_options(s3_options).client_key() not in s3_client._CLIENTS


@pytest.mark.parametrize("size", [0, 1, PART_SIZE, PART_SIZE + 1])
async def test_sizes_around_one_part_round_trip(ftp_server, size):
    data = os.urandom(size)

    def scenario() -> tuple[bytes, int]:
        ftp = login(ftp_server)
        try:
            ftp.storbinary("STOR f", io.BytesIO(data))
            return retr(ftp, "f"), ftp.size("f")
        finally:
            ftp.quit()

    got, reported = await in_thread(scenario)
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    assert reported == size


async def test_abor_mid_upload_leaves_nothing(ftp_server, s3_service, s3_prefix):
    def scenario() -> tuple[str, str]:
        ftp = login(ftp_server)
        try:
            ftp.voidcmd("TYPE I")
            conn = ftp.transfercmd("STOR aborted.bin")
            block = os.urandom(MIB)
            for _ in range(3 * PART_SIZE // MIB):
                conn.sendall(block)
            first = ftp.abort()  # ABOR as urgent data, as ftplib sends it
            second = ftp.getresp() if first.startswith("426") else ""
            conn.close()
            ftp.voidcmd("NOOP")
            return first, second
        finally:
            ftp.quit()

    first, second = await in_thread(scenario)
    assert first[:3] in ("426", "226", "225"), first
    bucket, prefix = alice_prefix(s3_service, s3_prefix)
    async with raw_client(s3_service) as client:
        assert await open_uploads(client, bucket, prefix) == []
        assert await all_keys(client, bucket, prefix) == []


@pytest.mark.parametrize("fault", ["cut", "stall"])
async def test_endpoint_lost_mid_upload_gives_451_and_session_goes_on(
    s3_service, s3_options, s3_prefix, fault
):
    """The endpoint goes away (connections reset) or hangs (connections open, no byte
    moves) mid-upload: 451 within the timeouts, no object, and the session goes on."""
    proxy = await FaultProxy(s3_service.endpoint_url).start()
    options = dict(s3_options, endpoint_url=proxy.url, max_attempts=2, connect_timeout=2,
                   read_timeout=2)
    server = Server(
        [User("alice", "secret", base_path=f"s3://{s3_service.bucket}/{s3_prefix}/alice")],
        storage_options=options,
    )
    await server.start(HOST, 0)
    loop = asyncio.get_running_loop()

    def scenario() -> tuple[str, bytes]:
        ftp = login(server)
        try:
            ftp.voidcmd("TYPE I")
            conn = ftp.transfercmd("STOR lost.bin")
            block = os.urandom(MIB)
            try:
                for sent in range(200):
                    if sent == 2 * PART_SIZE // MIB:
                        loop.call_soon_threadsafe(getattr(proxy, fault))
                    conn.sendall(block)
            except OSError:
                pass  # the server gave up on the transfer and dropped the data connection
            conn.close()
            code = error_code(ftp.voidresp)
            asyncio.run_coroutine_threadsafe(_restore(proxy), loop).result(10)
            ftp.voidcmd("NOOP")
            ftp.storbinary("STOR after.bin", io.BytesIO(b"back"))
            return code, retr(ftp, "after.bin")
        finally:
            ftp.quit()

    try:
        code, after = await in_thread(scenario)
    finally:
        await server.close()
        await proxy.close()
    assert code == "451"
    assert after == b"back"
    bucket, prefix = alice_prefix(s3_service, s3_prefix)
    async with raw_client(s3_service) as client:
        assert await all_keys(client, bucket, prefix) == [prefix + "after.bin"]
        # the abort that failed while the endpoint was away was retried once it returned
        assert await open_uploads(client, bucket, prefix) == []


async def _restore(proxy: FaultProxy) -> None:
    proxy.restore()
