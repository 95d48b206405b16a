"""The login limiter: tries in flight count, networks by prefix, logins locked for a while."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from gateway.config.loader import load_settings
from gateway.service.build import StaticUserManager, build_user_manager
from gateway.users import User
from gateway.users.database.hashing import HashPool, HashSettings, PasswordHashing
from gateway.users.database.limiter import AttemptRefused, LimiterSettings, LoginLimiter
from tests.server.conftest import RawClient

#: slow enough that every PASS is in flight before the first check ends (before the fix)
SLOWISH = HashSettings(time_cost=1, memory_cost=2048, parallelism=1)


def test_tries_in_flight_count_toward_the_ban() -> None:
    limiter = LoginLimiter(LimiterSettings(ban_after=3, base_delay=0))
    attempts = [limiter.begin("192.0.2.7", "alice") for _ in range(3)]
    with pytest.raises(AttemptRefused) as refused:
        limiter.begin("192.0.2.7", "alice")  # three checks running: no fourth
    assert refused.value.scope == "address"
    attempts[0].succeeded()  # a success gives its try back
    fourth = limiter.begin("192.0.2.7", "alice")
    for attempt in (attempts[1], attempts[2], fourth):
        attempt.failed()
    assert limiter.ban_remaining("192.0.2.7") > 0


def test_ban_counts_per_network_prefix() -> None:
    limiter = LoginLimiter(LimiterSettings(ban_after=2, base_delay=0))
    limiter.begin("2001:db8:0:7::1").failed()
    limiter.begin("2001:db8:0:7::2").failed()  # another address of the same /64
    assert limiter.ban_remaining("2001:db8:0:7:ffff::9") > 0
    assert limiter.ban_remaining("2001:db8:0:8::1") == 0
    limiter.begin("192.0.2.1").failed()
    limiter.begin("192.0.2.2").failed()
    assert limiter.ban_remaining("192.0.2.1") == 0  # IPv4: /32 by default
    wide = LoginLimiter(LimiterSettings(ban_after=2, base_delay=0, ban_prefix_ipv4=24,
                                        ban_prefix_ipv6=48))
    wide.begin("192.0.2.1").failed()
    wide.begin("::ffff:192.0.2.2").failed()  # IPv4-mapped counts as IPv4
    assert wide.ban_remaining("192.0.2.200") > 0
    assert wide.network("2001:db8:0:7::1") == "2001:db8::/48"


async def test_many_addresses_lock_one_login_for_a_bounded_time(caplog) -> None:
    limiter = LoginLimiter(LimiterSettings(ban_after=10, base_delay=0.01, max_delay=0.01,
                                           account_lock_after=4, account_lock_duration=0.3))
    running = [limiter.begin(f"198.51.100.{n}", "alice") for n in range(4)]
    with pytest.raises(AttemptRefused) as refused:  # four guesses running already
        limiter.begin("198.51.100.99", "alice")
    assert refused.value.scope == "account"
    limiter.begin("198.51.100.99", "bob").abandoned()  # other logins are not held back
    with caplog.at_level(logging.WARNING, logger="gateway.users.limiter"):
        for attempt in running:
            attempt.failed()
    assert 0 < limiter.lock_remaining("alice") <= 0.3
    assert limiter.account_locks == 1 and limiter.locked_accounts() == 1
    assert any("'alice' locked" in record.getMessage() for record in caplog.records)
    with pytest.raises(AttemptRefused):
        limiter.begin("203.0.113.1", "alice")
    deadline = time.monotonic() + 5
    while limiter.lock_remaining("alice"):  # never forever
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    limiter.begin("203.0.113.1", "alice").succeeded()


def test_new_keys_reach_the_limiter_and_hash_pool(tmp_path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[storage]\nroot = "{tmp_path}"\n'
        "[users]\nban_prefix_ipv4 = 24\nban_prefix_ipv6 = 56\naccount_lock_after = 7\n"
        "account_lock_duration = 60\nhash_workers = 3\nhash_queue = 9\n"
        '[[users.static]]\nlogin = "anonymous"\n'
    )
    manager = build_user_manager(load_settings(config, env={}))
    assert isinstance(manager, StaticUserManager)
    settings = manager.login_limiter.settings
    assert (settings.ban_prefix_ipv4, settings.ban_prefix_ipv6) == (24, 56)
    assert (settings.account_lock_after, settings.account_lock_duration) == (7, 60)
    assert (manager.hashing.pool.workers, manager.hashing.pool.max_waiting) == (3, 9)


async def test_concurrent_passwords_from_one_address_stop_at_ban_after(tmp_path) -> None:
    """60 sessions send USER alice, then all PASS at once: at most ban_after checks run."""
    from gateway import Server

    hashing = PasswordHashing(SLOWISH, pool=HashPool(2, 500))
    alice = User("alice", hashing.hash("right"), base_path=tmp_path)
    raw_clients: list[RawClient] = []
    limiter = LoginLimiter(LimiterSettings(ban_after=10, base_delay=0, max_delay=0))
    manager = StaticUserManager([alice], login_limiter=limiter, hashing=hashing)
    server = Server(manager)
    await server.start("127.0.0.1", 0)
    try:
        clients = []
        for _ in range(60):
            client = await RawClient.connect(server.server_port)
            raw_clients.append(client)
            await client.expect("USER alice", "331")
            clients.append(client)
        for client in clients[:-1]:
            await client.send("PASS wrong")
        await clients[-1].send("PASS right")
        replies = await asyncio.gather(*(client.reply() for client in clients))
    finally:
        for client in raw_clients:
            await client.close()
        async with asyncio.timeout(10):
            await server.close()
    checked = [r for r in replies if r.code == "230" or r.text == "wrong password"]
    refused = [r for r in replies if r.code == "421"]
    assert len(checked) <= 10, [r.code for r in replies]
    assert len(checked) + len(refused) == 60
    assert limiter.ban_remaining("127.0.0.1") > 0
