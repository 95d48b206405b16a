"""S3-rooted users driven by curl and by clients that vanish: what must never happen.

Each case here is one where a careless gateway commits a wrong object: a resumed
upload that keeps only the tail, a killed client whose bytes so far become the
object, a resume in the middle of an object that silently drops its end.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import socket
import struct
from pathlib import Path

from .conftest import MIB, PART_SIZE, all_keys, open_uploads, raw_client
from .test_ftp_s3 import HOST, alice_prefix, error_code, ftp_server, in_thread, login, retr

__all__ = ("ftp_server",)  # the fixture, shared with test_ftp_s3

DEADLINE = 30.0


async def curl(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        "curl", "--silent", "--show-error", "--max-time", "60", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(90):
        out, err = await process.communicate()
    return process.returncode or 0, (out + err).decode(errors="replace")


def url(server, name: str = "") -> str:
    return f"ftp://alice:secret@{HOST}:{server.server_port}/{name}"


async def wait_until_no_uploads(s3_service, bucket: str, prefix: str) -> list[str]:
    """Poll (with a deadline) until the server has aborted what a vanished client left."""
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    async with raw_client(s3_service) as client:
        while True:
            left = await open_uploads(client, bucket, prefix)
            if not left or loop.time() > end:
                return left
            await asyncio.sleep(0.1)


async def test_curl_resumed_upload_keeps_head_and_tail(ftp_server, tmp_path: Path):
    """``curl -C - -T`` asks SIZE, then APPEs the rest: the object is the whole file."""
    data = os.urandom(PART_SIZE + 3 * MIB + 17)
    head = PART_SIZE + 123  # more than one part already stored: a server-side copy
    (tmp_path / "full.bin").write_bytes(data)

    def store_head() -> None:
        ftp = login(ftp_server)
        try:
            ftp.storbinary("STOR resumed.bin", io.BytesIO(data[:head]))
        finally:
            ftp.quit()

    await in_thread(store_head)
    code, output = await curl("-C", "-", "-T", str(tmp_path / "full.bin"), url(ftp_server, "resumed.bin"))
    assert code == 0, output
    code, output = await curl("-o", str(tmp_path / "back.bin"), url(ftp_server, "resumed.bin"))
    assert code == 0, output
    back = (tmp_path / "back.bin").read_bytes()
    assert len(back) == len(data)
    assert hashlib.sha256(back).digest() == hashlib.sha256(data).digest()


async def test_curl_upload_and_resumed_download_of_100_mib(ftp_server, tmp_path: Path):
    data = os.urandom(100 * MIB)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    code, output = await curl("-T", str(source), url(ftp_server, "big.bin"))
    assert code == 0, output
    target = tmp_path / "down.bin"
    target.write_bytes(data[: 37 * MIB + 5])  # a download cut short, resumed with REST
    code, output = await curl("-C", "-", "-o", str(target), url(ftp_server, "big.bin"))
    assert code == 0, output
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest()


async def test_resume_inside_an_object_is_refused_and_the_object_kept(ftp_server):
    """REST n + STOR with n short of the end would have to drop the old tail: 554."""
    data = os.urandom(2000)

    def scenario() -> tuple[str, str, bytes]:
        ftp = login(ftp_server)
        try:
            ftp.storbinary("STOR kept.bin", io.BytesIO(data))
            ftp.voidcmd("TYPE I")
            # beyond the end: there is nothing to continue from
            beyond = error_code(ftp.storbinary, "STOR kept.bin", io.BytesIO(b"x"), 8192, None, 5000)
            # inside, with too few bytes to reach the end: the old tail would be lost
            inside = error_code(ftp.storbinary, "STOR kept.bin", io.BytesIO(b"new"), 8192, None, 100)
            ftp.voidcmd("NOOP")  # the session goes on
            return beyond, inside, retr(ftp, "kept.bin")
        finally:
            ftp.quit()

    beyond, inside, kept = await in_thread(scenario)
    assert beyond == "554" and inside == "554"
    assert kept == data


async def test_killed_client_mid_upload_leaves_no_object(ftp_server, s3_service, s3_prefix):
    """Control and data connections both reset mid-upload, as when the client dies."""

    def scenario() -> None:
        ftp = login(ftp_server)
        ftp.voidcmd("TYPE I")
        conn = ftp.transfercmd("STOR killed.bin")
        block = os.urandom(MIB)
        for _ in range(3 * PART_SIZE // MIB):  # parts already uploaded
            conn.sendall(block)
        for sock in (conn, ftp.sock):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()

    await in_thread(scenario)
    bucket, prefix = alice_prefix(s3_service, s3_prefix)
    assert await wait_until_no_uploads(s3_service, bucket, prefix) == []
    async with raw_client(s3_service) as client:
        assert await all_keys(client, bucket, prefix) == []


async def test_listing_of_10000_keys(ftp_server, s3_service, s3_prefix):
    count = 10_000
    bucket, prefix = alice_prefix(s3_service, s3_prefix)
    async with raw_client(s3_service) as client:
        limit = asyncio.Semaphore(64)

        async def create(i: int) -> None:
            async with limit:
                await client.put_object(Bucket=bucket, Key=f"{prefix}many/f{i:05}", Body=b"")

        await asyncio.gather(*(create(i) for i in range(count)))

    def scenario() -> tuple[list[str], list[str]]:
        ftp = login(ftp_server)
        try:
            return ftp.nlst("many"), [name for name, _ in ftp.mlsd("many")]
        finally:
            ftp.quit()

    names, mlsd = await in_thread(scenario)
    expected = [f"f{i:05}" for i in range(count)]
    assert sorted(name.rsplit("/", 1)[-1] for name in names) == expected
    assert sorted(mlsd) == expected


async def test_data_connection_dropped_then_next_upload_works(ftp_server, s3_service, s3_prefix):
    """After an upload cut off by the client, the same session uploads a whole file."""
    data = os.urandom(PART_SIZE + 1)

    def scenario() -> tuple[str, bytes]:
        ftp = login(ftp_server)
        try:
            ftp.voidcmd("TYPE I")
            conn = ftp.transfercmd("STOR cut.bin")
            conn.sendall(os.urandom(2 * PART_SIZE))
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            code = error_code(ftp.voidresp)
            ftp.storbinary("STOR whole.bin", io.BytesIO(data))
            return code, retr(ftp, "whole.bin")
        finally:
            ftp.quit()

    code, whole = await in_thread(scenario)
    assert code[0] in "45", code
    assert whole == data
    bucket, prefix = alice_prefix(s3_service, s3_prefix)
    async with raw_client(s3_service) as client:
        assert await all_keys(client, bucket, prefix) == [prefix + "whole.bin"]



async def test_python_m_gateway_serves_a_bucket_from_the_aws_environment(s3_service, s3_prefix):
    """``python -m gateway -d s3://bucket/prefix`` with the endpoint and keys in the
    standard AWS variables: the quickest S3 frontend there is."""
    import re
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GATEWAY_"))}
    env.update(AWS_ENDPOINT_URL=s3_service.endpoint_url, AWS_ACCESS_KEY_ID=s3_service.access_key,
               AWS_SECRET_ACCESS_KEY=s3_service.secret_key, AWS_DEFAULT_REGION=s3_service.region,
               AWS_EC2_METADATA_DISABLED="true")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "--host", HOST, "--port", "0", "--user", "alice",
        "--pass", "secret", "-d", f"s3://{s3_service.bucket}/{s3_prefix}/cli",
        env=env, stdout=subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(30):
            while True:
                line = (await process.stderr.readline()).decode()
                assert line, "python -m gateway exited before serving"
                if match := re.search(r"serving on \S+:(\d+)", line):
                    port = int(match.group(1))
                    break
        # keep reading the log, so a full pipe never blocks the server
        drain = asyncio.ensure_future(process.stderr.read())

        def scenario() -> list[str]:
            from ftplib import FTP

            ftp = FTP(timeout=30)
            ftp.connect(HOST, port)
            ftp.login("alice", "secret")
            ftp.storbinary("STOR hello.txt", io.BytesIO(b"from the cli"))
            names = ftp.nlst()
            ftp.quit()
            return names

        assert await in_thread(scenario) == ["hello.txt"]
    finally:
        process.terminate()
        async with asyncio.timeout(30):
            await process.wait()
    await drain
    async with raw_client(s3_service) as client:
        body = await client.get_object(Bucket=s3_service.bucket, Key=f"{s3_prefix}/cli/hello.txt")
        assert await body["Body"].read() == b"from the cli"
