"""An account's byte and file quotas in real sessions, on SQLite and PostgreSQL, with
files on local disk, in memory and in S3: refusals, cut-offs and the usage kept."""

from __future__ import annotations

import pytest

from .conftest import KIB, MIB, account_with_quota, expect_reply, in_thread, login, store, usage_of

QUOTA = 100 * KIB


def _refused(reply: str, limit: str) -> None:
    assert reply.startswith("552 "), reply
    assert f"quota exceeded: {limit}" in reply, reply


async def test_byte_and_file_quota(database_url, storage, quota_servers) -> None:
    await account_with_quota(database_url, storage, max_bytes=QUOTA, max_files=3)
    server = await quota_servers()
    ftp = await in_thread(login, server.server_port)
    seen: dict[str, object] = {}

    async def step(name: str, expected: tuple[int, int, int], func, *args) -> str:
        reply = await in_thread(func, *args)
        seen[name] = await usage_of(database_url, expected)
        return reply

    assert (await step("first", (60 * KIB, 1, 0), store, ftp, "a.bin", b"a" * (60 * KIB))).startswith("226")
    assert seen["first"] == (60 * KIB, 1, 0)
    # announced beyond the quota: refused before any data flows
    _refused(await step("allo", (60 * KIB, 1, 0), store, ftp, "b.bin", b"b" * (50 * KIB), 50 * KIB), "max-bytes 100 KiB")
    # not announced: cut off when the bytes pass the quota, and nothing kept
    _refused(await step("cut", (60 * KIB, 1, 0), store, ftp, "c.bin", b"c" * MIB), "max-bytes 100 KiB")
    assert seen["allo"] == seen["cut"] == (60 * KIB, 1, 0)
    # an overwrite counts its growth only: 60 KiB -> 90 KiB fits in 100 KiB
    assert (await step("overwrite", (90 * KIB, 1, 0), store, ftp, "a.bin", b"A" * (90 * KIB))).startswith("226")
    assert seen["overwrite"] == (90 * KIB, 1, 0)
    assert (await step("small", (95 * KIB, 2, 0), store, ftp, "d.bin", b"d" * (5 * KIB))).startswith("226")
    assert seen["small"] == (95 * KIB, 2, 0)
    # a rename over a file removes the replaced file from the count
    await in_thread(ftp.sendcmd, "RNFR d.bin")
    assert (await step("rename", (5 * KIB, 1, 0), ftp.sendcmd, "RNTO a.bin")).startswith("250")
    assert seen["rename"] == (5 * KIB, 1, 0)
    assert (await step("delete", (0, 0, 0), ftp.delete, "a.bin")).startswith("250")
    assert seen["delete"] == (0, 0, 0)
    # the file count: three files fit, the fourth is refused at open
    for name in ("1", "2", "3"):
        assert (await in_thread(store, ftp, name, b"x")).startswith("226")
    _refused(await step("files", (3, 3, 0), store, ftp, "4", b"x"), "max-files 3")
    assert seen["files"] == (3, 3, 0)
    # what the database counts is what storage holds
    assert await storage.sizes() == {"1": 1, "2": 1, "3": 1}
    await in_thread(ftp.quit)


@pytest.mark.parametrize(("database_kind", "storage_kind"), [("sqlite", "memory"), ("postgresql", "s3")])
async def test_site_quota_and_avbl(database_url, storage, quota_servers) -> None:
    await account_with_quota(database_url, storage, max_bytes=QUOTA, upload_per_day=10 * MIB)
    await storage.put("old.bin", b"o" * 1000)  # stored before: not counted until a rescan
    server = await quota_servers()
    ftp = await in_thread(login, server.server_port)
    assert (await in_thread(store, ftp, "a.bin", b"a" * (10 * KIB))).startswith("226")
    quota = await in_thread(ftp.sendcmd, "SITE QUOTA")
    avbl = await in_thread(ftp.sendcmd, "AVBL")
    avbl_path = await in_thread(ftp.sendcmd, "AVBL /a.bin")
    features = await in_thread(ftp.sendcmd, "FEAT")
    await in_thread(ftp.quit)
    assert quota.startswith("211-Quota of q:")
    assert "bytes: 10 KiB used of 100 KiB (max-bytes), 90 KiB left" in quota
    assert "files: 1 used, no limit" in quota
    assert "upload today: 10 KiB used of 10 MiB (upload-per-day), 9.99 MiB left" in quota
    assert quota.endswith("211 End")
    assert avbl == avbl_path == f"213 {QUOTA - 10 * KIB}"
    assert " AVBL" in features


@pytest.mark.parametrize(("database_kind", "storage_kind"), [("postgresql", "local")])
async def test_no_quota_is_not_counted(database_url, storage, quota_servers) -> None:
    from .conftest import PASSWORD, add_account

    await add_account(database_url, "free", PASSWORD, root=storage.root)
    server = await quota_servers()
    ftp = await in_thread(login, server.server_port, "free")
    assert (await in_thread(store, ftp, "a.bin", b"a" * (10 * KIB))).startswith("226")
    quota = await in_thread(ftp.sendcmd, "SITE QUOTA")
    avbl = await in_thread(expect_reply, ftp.sendcmd, "AVBL")
    await in_thread(ftp.quit)
    assert quota == "211-Quota of free:\n no quota\n211 End"
    assert avbl == "550 no quota: available space not known"
