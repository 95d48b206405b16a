"""Two nodes on one PostgreSQL enforce one account's byte quota together."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.server import quotapolicy
from gateway.users.database import quotastore

from .conftest import KIB, MIB, account_with_quota, in_thread, login, read_usage, store, usage_of

QUOTA = 3 * MIB
#: How far the usage may pass the quota (README, Quotas): claims are granted only
#: below the limit, so concurrent uploads of new files never pass it at all.
BOUND = 0


async def _race(database_url, storage, quota_servers, files: int, size: int) -> None:
    await account_with_quota(database_url, storage, max_bytes=QUOTA)
    nodes = [await quota_servers(), await quota_servers()]

    def client(port: int, index: int) -> list[str]:
        ftp = login(port)
        replies = [store(ftp, f"n{index}-{i}.bin", bytes([index]) * size) for i in range(files)]
        ftp.quit()
        return replies

    results = await asyncio.gather(*(
        in_thread(client, nodes[index % 2].server_port, index) for index in range(4)
    ))
    replies = [reply for per_client in results for reply in per_client]
    stored = [reply for reply in replies if reply.startswith("226")]
    refused = [reply for reply in replies if not reply.startswith("226")]
    assert stored, replies
    assert refused, replies  # more than the quota was sent
    assert all(reply.startswith("552 ") and "quota exceeded: max-bytes 3 MiB" in reply
               for reply in refused), refused
    # every claim comes back: what running uploads held, and the nodes' spares
    used, files_kept, reserved = await usage_of(database_url)
    sizes = await storage.sizes()
    assert reserved == 0
    assert used == sum(sizes.values()) == len(stored) * size
    assert files_kept == len(sizes) == len(stored)
    assert used <= QUOTA + BOUND


@pytest.mark.parametrize(("database_kind", "storage_kind"), [("postgresql", "local")])
async def test_two_nodes_share_one_byte_quota(database_url, storage, quota_servers) -> None:
    await _race(database_url, storage, quota_servers, files=4, size=400 * KIB)


@pytest.mark.parametrize(("database_kind", "storage_kind"), [("postgresql", "local")])
async def test_two_nodes_with_spares_share_one_byte_quota(database_url, storage, quota_servers,
                                                          monkeypatch) -> None:
    """The same race with the nodes' spares in play: scaled down so that 3 MiB is
    "far from the limit" at first and near it at the end."""
    monkeypatch.setattr(quotapolicy, "CLAIM_BYTES", 64 * KIB)
    monkeypatch.setattr(quotapolicy, "AHEAD_BYTES", 64 * KIB)
    monkeypatch.setattr(quotastore, "SPARE_BYTES", 512 * KIB)
    monkeypatch.setattr(quotastore, "SPARE_MARGIN", 1 * MIB)
    monkeypatch.setattr(quotastore, "IDLE_SECONDS", 0.2)
    await _race(database_url, storage, quota_servers, files=12, size=100 * KIB)


@pytest.mark.parametrize(("database_kind", "storage_kind"), [("postgresql", "local")])
async def test_a_node_that_stops_leaves_no_claim(database_url, storage, quota_servers,
                                                  monkeypatch) -> None:
    """Its spare is given back and its last counts written when the node closes, even
    before the spare's idle time."""
    monkeypatch.setattr(quotapolicy, "CLAIM_BYTES", 64 * KIB)
    monkeypatch.setattr(quotapolicy, "AHEAD_BYTES", 64 * KIB)
    monkeypatch.setattr(quotastore, "SPARE_BYTES", 512 * KIB)
    monkeypatch.setattr(quotastore, "SPARE_MARGIN", 1 * MIB)
    monkeypatch.setattr(quotastore, "IDLE_SECONDS", 600.0)
    await account_with_quota(database_url, storage, max_bytes=QUOTA)
    server = await quota_servers()

    def uploads() -> list[str]:
        ftp = login(server.server_port)
        replies = [store(ftp, f"f{i}.bin", b"f" * (50 * KIB)) for i in range(6)]
        ftp.quit()
        return replies

    assert all(reply.startswith("226") for reply in await in_thread(uploads))
    deadline = time.monotonic() + 10
    while (held := await read_usage(database_url))[:2] != (6 * 50 * KIB, 6):
        assert time.monotonic() < deadline, held
        await asyncio.sleep(0.02)
    assert held[2] > 0  # the node keeps part of the quota claimed for its next uploads
    await server.close()
    await server.user_manager.close()
    assert await usage_of(database_url, (6 * 50 * KIB, 6, 0)) == (6 * 50 * KIB, 6, 0)
