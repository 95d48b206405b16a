"""A shared folder's quota: what anyone stores in it counts against the folder, not
against the account that stored it."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.users.database import folder_admin, quotaadmin

from .conftest import KIB, account_with_quota, change, in_thread, login, store, usage_of


@pytest.mark.parametrize(("database_kind", "storage_kind"), [("postgresql", "local")])
async def test_folder_quota_counts_the_folder(database_url, storage, quota_servers,
                                              tmp_path: Path) -> None:
    team = tmp_path / "team"
    await account_with_quota(database_url, storage, max_bytes=100 * KIB)
    await change(database_url, folder_admin.add_folder, "team", str(team))
    await change(database_url, folder_admin.mount, "q", "/team", "team")
    await change(database_url, quotaadmin.set_folder_quota, "team", {"max_bytes": 50 * KIB})
    server = await quota_servers()
    ftp = await in_thread(login, server.server_port)

    async def folder_usage(expected: tuple[int, int]) -> tuple[int, int]:
        found = await usage_of(database_url, (*expected, 0), "team", folder=True)
        return found[0], found[1]

    assert (await in_thread(store, ftp, "/team/a.bin", b"a" * (40 * KIB))).startswith("226")
    assert await folder_usage((40 * KIB, 1)) == (40 * KIB, 1)
    assert await usage_of(database_url, (0, 0, 0)) == (0, 0, 0)  # the account's own files: none
    reply = await in_thread(store, ftp, "/team/b.bin", b"b" * (20 * KIB))
    assert reply.startswith("552 ") and "quota exceeded: max-bytes 50 KiB" in reply
    # the account's own quota is its own: 60 KiB fit there
    assert (await in_thread(store, ftp, "/mine.bin", b"m" * (60 * KIB))).startswith("226")
    assert await usage_of(database_url, (60 * KIB, 1, 0)) == (60 * KIB, 1, 0)
    assert await in_thread(ftp.sendcmd, "AVBL /team") == f"213 {10 * KIB}"
    assert await in_thread(ftp.sendcmd, "AVBL /") == f"213 {40 * KIB}"
    # a file moved out of the folder moves its bytes from one count to the other
    await in_thread(ftp.sendcmd, "RNFR /team/a.bin")
    assert (await in_thread(ftp.sendcmd, "RNTO /moved.bin")).startswith("250")
    assert await folder_usage((0, 0)) == (0, 0)
    assert await usage_of(database_url, (100 * KIB, 2, 0)) == (100 * KIB, 2, 0)
    await in_thread(ftp.quit)
    assert sorted(p.name for p in team.iterdir()) == []
