"""Transfer quotas: bytes an account may upload and download per day and month."""

from __future__ import annotations

import asyncio
import ftplib
import socket
import time

import pytest

from .conftest import HOST, KIB, STEP, account_with_quota, change, fetch, in_thread, login, store

LIMIT = 100 * KIB


def _refused(reply: str, limit: str) -> None:
    assert reply.startswith("552 "), reply
    assert f"quota exceeded: {limit}" in reply, reply


@pytest.mark.parametrize(("database_kind", "storage_kind"),
                         [("sqlite", "local"), ("postgresql", "s3"), ("sqlite", "memory")])
async def test_upload_and_download_per_day(database_url, storage, quota_servers) -> None:
    from gateway.users.database import quotaadmin

    await account_with_quota(database_url, storage, upload_per_day=LIMIT, download_per_month=LIMIT)
    server = await quota_servers()
    ftp = await in_thread(login, server.server_port)
    data = b"u" * (60 * KIB)
    assert (await in_thread(store, ftp, "a.bin", data)).startswith("226")
    # announced beyond what is left today: refused before data flows
    _refused(await in_thread(store, ftp, "b.bin", data, len(data)), "upload-per-day 100 KiB")
    # not announced: cut off where today's quota ends, nothing kept
    _refused(await in_thread(store, ftp, "c.bin", data), "upload-per-day 100 KiB")
    assert sorted(await storage.sizes()) == ["a.bin"]
    reply, got = await in_thread(fetch, ftp, "a.bin")
    assert reply.startswith("226") and got == data
    # a second copy does not fit in what is left this month: refused at open
    reply, got = await in_thread(fetch, ftp, "a.bin")
    _refused(reply, "download-per-month 100 KiB")
    assert got == b""
    # (a node writes its counts a round trip after its reply)
    deadline = time.monotonic() + 10
    while True:
        info = await change(database_url, quotaadmin.get_quota, "q")
        if info.transfers.downloaded_month == 60 * KIB or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    assert info.transfers.downloaded_month == 60 * KIB
    assert 60 * KIB <= info.transfers.uploaded_day <= LIMIT
    await in_thread(ftp.quit)


@pytest.mark.parametrize(("database_kind", "storage_kind"), [("postgresql", "local")])
async def test_download_cut_off_mid_stream(database_url, storage, quota_servers) -> None:
    """A file that grows while it is sent: the bytes past the quota are not sent."""
    await account_with_quota(database_url, storage, download_per_day=LIMIT)
    await storage.put("grow.bin", b"g" * (10 * KIB))
    server = await quota_servers()

    def scenario() -> tuple[str, int]:
        ftp = login(server.server_port)
        host, port = ftplib.parse227(ftp.sendcmd("PASV"))
        ftp.putcmd("RETR grow.bin")
        assert ftp.getresp().startswith("150")
        # the file was opened (and found to fit); it grows before the data flows
        assert storage.path is not None
        with open(storage.path / "grow.bin", "ab") as grown:
            grown.write(b"g" * (200 * KIB))
        received = 0
        with socket.create_connection((HOST, port), timeout=STEP) as data:
            while chunk := data.recv(65536):
                received += len(chunk)
        try:
            reply = ftp.getresp()
        except (ftplib.error_perm, ftplib.error_temp) as exc:
            reply = str(exc)
        ftp.quit()
        return reply, received

    reply, received = await in_thread(scenario)
    _refused(reply, "download-per-day 100 KiB")
    assert received <= LIMIT
