"""Graceful shutdown with S3 storage: an upload cut by the grace period is aborted,
one that finishes in time is committed whole."""

from __future__ import annotations

import asyncio
import ftplib
import os

from gateway import Server, User
from tests.s3.conftest import MIB, PART_SIZE, all_keys, open_uploads, raw_client

HOST = "127.0.0.1"


async def test_upload_cut_by_grace_period_leaves_no_object(s3_service, s3_options, s3_prefix):
    root = f"s3://{s3_service.bucket}/{s3_prefix}/alice"
    server = Server([User("alice", "pw", base_path=root)], storage_options=s3_options)
    await server.start(HOST, 0)
    sent_parts = asyncio.Event()
    loop = asyncio.get_running_loop()

    def client() -> str:
        ftp = ftplib.FTP(timeout=30)
        ftp.connect(HOST, server.server_port)
        ftp.login("alice", "pw")
        ftp.voidcmd("TYPE I")
        conn = ftp.transfercmd("STOR cut.bin")
        block = os.urandom(MIB)
        for _ in range(2 * PART_SIZE // MIB + 1):  # two parts uploading or uploaded
            conn.sendall(block)
        loop.call_soon_threadsafe(sent_parts.set)
        try:
            return ftp.getline()  # the 421 when the grace period is over
        finally:
            conn.close()
            ftp.close()

    worker = asyncio.ensure_future(asyncio.to_thread(client))
    async with asyncio.timeout(60):
        await sent_parts.wait()
        await server.shutdown(grace=0.5)
        reply = await worker
    assert reply.startswith("421"), reply
    bucket, prefix = s3_service.bucket, f"{s3_prefix}/alice/"
    async with raw_client(s3_service) as raw:
        assert await open_uploads(raw, bucket, prefix) == []
        assert await all_keys(raw, bucket, prefix) == []
