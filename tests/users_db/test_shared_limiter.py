"""Login failures shared by several nodes on one database (SQLite and PostgreSQL).

Two ``DatabaseUserManager`` instances on one database are two nodes: each has its own
in-memory limiter, and the ``login_failures`` table makes them count together.  Time
is a fake clock given to both the limiters and the table, so expiry needs no sleep.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from sqlalchemy import func, select

from gateway.observe.metrics import Metrics
from gateway.users.database.engine import create_engine
from gateway.users.database.failures import SharedFailures, stored_key
from gateway.users.database.limiter import (
    AttemptRefused,
    LimiterSettings,
    LoginLimiter,
    LoginLocked,
    NetworkRefused,
    SharedKey,
)
from gateway.users.database.manager import DatabaseUserManager
from gateway.users.database.models import LoginFailureRow
from tests.users_db.conftest import add_account, ftp_connect, in_thread, login_error

GUESSER = "198.51.100.7"


class Clock:
    """Epoch and monotonic seconds that move only when told to."""

    def __init__(self) -> None:
        self.epoch = 1_800_000_000.0
        self.mono = 5_000.0

    def time(self) -> float:
        return self.epoch

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.epoch += seconds
        self.mono += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def nodes(database_url: str, make_manager, clock: Clock):
    """``nodes(settings)``: two managers on the one database, each its own limiter."""

    def make(settings: LimiterSettings) -> tuple[DatabaseUserManager, DatabaseUserManager]:
        made = []
        for _ in range(2):
            manager = make_manager(
                database_url, login_limiter=LoginLimiter(settings, clock=clock.monotonic)
            )
            assert manager.login_failures is not None
            manager.login_failures.clock = clock.time
            made.append(manager)
        return made[0], made[1]

    return make


async def guess(manager: DatabaseUserManager, address: str, login: str,
                password: str = "wrong") -> str:
    """One PASS, as the login handler makes it: the reply code (and "locked")."""
    limiter = manager.login_limiter
    assert limiter is not None
    try:
        attempt = limiter.begin(address, login)
    except AttemptRefused as exc:
        return "421" if exc.scope == "address" else "530 locked"
    try:
        await attempt.wait_turn()
    except NetworkRefused:
        attempt.abandoned()
        return "421"
    except LoginLocked:
        attempt.succeeded()
        return "530 locked"
    _, user, _ = await manager.get_user(login)
    assert user is not None
    if await manager.authenticate(user, password):
        attempt.succeeded()
        await manager.notify_logout(user)
        return "230"
    attempt.failed()
    return "530"


async def settle(*managers: DatabaseUserManager) -> None:
    """Let the background writes (bans, releases) land."""
    for manager in managers:
        assert manager.login_failures is not None
        await manager.login_failures.drain()


def lockouts(metrics: Metrics, scope: str) -> float:
    value = metrics.registry.get_sample_value("gateway_login_lockouts_total", {"scope": scope})
    assert value is not None
    return value


async def rows(url: str) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            query = select(func.count()).select_from(LoginFailureRow.__table__)
            return int((await connection.execute(query)).scalar_one())
    finally:
        await engine.dispose()


async def test_guesses_alternating_nodes_are_banned_at_ban_after_in_total(
    database_url: str, root: Path, nodes, caplog
) -> None:
    await add_account(database_url, "alice", "s3cret", root=root)
    node_a, node_b = nodes(LimiterSettings(base_delay=0, ban_after=4, ban_duration=60,
                                           account_lock_after=0))
    metrics = Metrics()
    before = lockouts(metrics, "network")
    with caplog.at_level(logging.WARNING, logger="gateway.users.limiter"):
        replies = [await guess(node, GUESSER, "alice") for node in (node_a, node_b) * 2]
    assert replies == ["530"] * 4  # two failures per node: neither would ban alone
    assert lockouts(metrics, "network") == before + 1  # decided once, by node B
    assert b'gateway_login_lockouts_total{scope="network"}' in generate_latest(metrics.registry)
    assert [r.getMessage() for r in caplog.records if "banned" in r.getMessage()] == [
        "network 198.51.100.7/32 banned on every node for 60 s after 4 failed logins"
    ]
    await settle(node_a, node_b)
    assert await guess(node_a, GUESSER, "alice", "s3cret") == "421"  # even the right password
    assert await guess(node_b, GUESSER, "alice", "s3cret") == "421"
    # both now refuse from memory, before any query or hash
    for node in (node_a, node_b):
        assert node.login_limiter is not None
        assert 0 < node.login_limiter.ban_remaining(GUESSER) <= 60
    assert await guess(node_a, "198.51.100.8", "alice", "s3cret") == "230"  # a neighbour may


async def test_a_ban_made_on_one_node_refuses_on_the_other(
    database_url: str, root: Path, nodes
) -> None:
    await add_account(database_url, "alice", "s3cret", root=root)
    node_a, node_b = nodes(LimiterSettings(base_delay=0, ban_after=3, ban_duration=60))
    assert [await guess(node_a, GUESSER, "alice") for _ in range(3)] == ["530"] * 3
    await settle(node_a)
    assert node_b.login_limiter is not None
    assert node_b.login_limiter.ban_remaining(GUESSER) == 0  # B has seen nothing of it
    assert await guess(node_b, GUESSER, "alice", "s3cret") == "421"
    assert 59 <= node_b.login_limiter.ban_remaining(GUESSER) <= 60  # learned: from memory now
    assert await guess(node_b, "2001:db8::1", "alice", "s3cret") == "230"


async def test_tries_running_on_one_node_count_on_the_other(
    database_url: str, nodes
) -> None:
    node_a, node_b = nodes(LimiterSettings(base_delay=0, ban_after=3))
    assert node_a.login_limiter is not None
    running = [node_a.login_limiter.begin(GUESSER, "alice") for _ in range(3)]
    for attempt in running:
        await attempt.wait_turn()  # counted in the database, not checked yet
    assert await guess(node_b, GUESSER, "alice") == "421"
    for attempt in running:
        attempt.abandoned()  # never judged (the hashing queue was full): given back
    await settle(node_a)
    assert await guess(node_b, GUESSER, "alice") == "530"


async def test_a_login_locked_by_failures_spread_over_both_nodes(
    database_url: str, root: Path, nodes, caplog
) -> None:
    await add_account(database_url, "alice", "s3cret", root=root)
    await add_account(database_url, "bob", "pw", root=root)
    node_a, node_b = nodes(LimiterSettings(base_delay=0, ban_after=0, account_lock_after=4,
                                           account_lock_duration=30))
    metrics = Metrics()
    before = lockouts(metrics, "login")
    with caplog.at_level(logging.WARNING, logger="gateway.users.limiter"):
        replies = [
            await guess((node_a, node_b)[n % 2], f"203.0.113.{n}", "alice") for n in range(4)
        ]
    assert replies == ["530"] * 4  # four addresses, two nodes
    assert lockouts(metrics, "login") == before + 1
    assert any("'alice' locked on every node for 30 s" in r.getMessage() for r in caplog.records)
    await settle(node_a, node_b)
    assert await guess(node_a, "192.0.2.50", "alice", "s3cret") == "530 locked"
    assert await guess(node_b, "192.0.2.51", "alice", "s3cret") == "530 locked"
    assert await guess(node_b, "192.0.2.51", "bob", "pw") == "230"  # other logins go on


async def test_bans_and_counts_expire(
    database_url: str, root: Path, nodes, clock: Clock
) -> None:
    await add_account(database_url, "alice", "s3cret", root=root)
    node_a, node_b = nodes(LimiterSettings(base_delay=0, ban_after=3, ban_duration=30,
                                           forget_after=100, account_lock_after=0))
    for node in (node_a, node_b, node_a):
        assert await guess(node, GUESSER, "alice") == "530"
    await settle(node_a)
    assert await guess(node_b, GUESSER, "alice", "s3cret") == "421"
    clock.advance(31)  # the ban is over, on both nodes
    assert await guess(node_b, GUESSER, "alice", "s3cret") == "230"
    assert await guess(node_a, GUESSER, "alice", "s3cret") == "230"
    await settle(node_a, node_b)  # the successes cleared the count (in the background)

    # two failures, then silence for longer than forget_after: the count starts over
    assert await guess(node_a, GUESSER, "alice") == "530"
    assert await guess(node_b, GUESSER, "alice") == "530"
    clock.advance(101)
    assert [await guess(node, GUESSER, "alice") for node in (node_a, node_b)] == ["530"] * 2
    assert node_a.login_limiter is not None
    assert node_a.login_limiter.ban_remaining(GUESSER) == 0

    # rows that mean nothing any more are purged, bans still running are kept
    await settle(node_a, node_b)
    assert node_a.login_failures is not None
    assert await node_a.login_failures.purge() == 0
    assert await guess(node_a, "192.0.2.9", "alice") == "530"
    clock.advance(101)
    for _ in range(3):
        await guess(node_b, "192.0.2.10", "alice")  # banned for 30 s from now
    await settle(node_a, node_b)
    # GUESSER's and 192.0.2.9's counts went with the purge the first of these tries
    # started (a node purges once per minute, in the background)
    assert await rows(database_url) == 1
    clock.advance(101)
    assert await node_a.login_failures.purge() == 1  # the ban, once over and forgotten
    assert await rows(database_url) == 0


async def test_a_right_password_clears_the_shared_counts(
    database_url: str, root: Path, nodes
) -> None:
    await add_account(database_url, "alice", "s3cret", root=root)
    node_a, node_b = nodes(LimiterSettings(base_delay=0, ban_after=3, account_lock_after=5))
    assert await guess(node_a, GUESSER, "alice") == "530"
    assert await guess(node_b, GUESSER, "alice") == "530"
    assert await guess(node_a, GUESSER, "alice", "s3cret") == "230"
    await settle(node_a)
    assert await rows(database_url) == 0  # nothing left: logins that work cost no row
    assert [await guess(node_b, GUESSER, "alice") for _ in range(2)] == ["530"] * 2


async def test_odd_logins_are_counted_too(database_url: str, clock: Clock) -> None:
    """A name the database could not store as text must not turn the sharing off."""
    engine = create_engine(database_url)
    book = SharedFailures(engine, forget_after=100, clock=clock.time)
    try:
        for login in ("a\x00b", "caf\udce9", "x" * 5000, "sha256:" + "0" * 64, "alice"):
            keys = [SharedKey("network", "192.0.2.1/32", 0), SharedKey("login", login, 0)]
            counts = await book.reserve(keys)
            assert counts is not None, login
            assert counts["login"].failures == 1
        assert (await book.reserve(keys)) is not None
        assert (await book.reserve(keys))["login"].failures == 3  # type: ignore[index]
    finally:
        await book.close()
        await engine.dispose()
    assert stored_key("alice") == "alice"
    assert stored_key("a\x00b").startswith("sha256:") and len(stored_key("x" * 5000)) == 71


async def test_an_unreachable_database_falls_back_to_each_node_alone(caplog) -> None:
    engine = create_engine("postgresql+asyncpg://nobody:pw@127.0.0.1:9/none", query_timeout=2)
    book = SharedFailures(engine, forget_after=100, query_timeout=2)
    limiter = LoginLimiter(LimiterSettings(base_delay=0, ban_after=3))
    limiter.share(book)
    try:
        with caplog.at_level(logging.WARNING, logger="gateway.users.limiter"):
            for _ in range(3):
                attempt = limiter.begin(GUESSER, "alice")
                await attempt.wait_turn()  # the database does not answer: memory decides
                attempt.failed()
            with pytest.raises(AttemptRefused):
                limiter.begin(GUESSER, "alice")  # never more than ban_after on this node
    finally:
        await book.close()
        await engine.dispose()
    unreachable = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(unreachable) == 1 and unreachable[0].levelno == logging.ERROR  # once, not per try
    assert limiter.ban_remaining(GUESSER) > 0


async def test_two_gateways_on_one_database_ban_at_ban_after_in_total(
    database_url: str, root: Path, make_manager, make_server
) -> None:
    """Two FTP servers, one database; a guesser alternating between them with ftplib."""
    await add_account(database_url, "alice", "s3cret", root=root)
    settings = LimiterSettings(base_delay=0, ban_after=4, ban_duration=60, account_lock_after=0)
    ports = []
    for _ in range(2):
        manager = make_manager(database_url, login_limiter=LoginLimiter(settings))
        ports.append((await make_server(manager)).server_port)

    def guesses() -> list[str]:
        replies = []
        sessions = [ftp_connect(port) for port in ports]  # one session per server
        try:
            for n in range(5):
                ftp = sessions[n % 2]
                ftp.sendcmd("USER alice")
                try:
                    ftp.sendcmd(f"PASS guess{n}")
                except Exception as exc:
                    replies.append(str(exc)[:3])
        finally:
            for ftp in sessions:
                ftp.close()
        return replies

    # two wrong passwords on each server, then the fifth try is refused and the door shut
    assert await in_thread(guesses) == ["530", "530", "530", "530", "421"]
    for port in ports:  # a new connection to either, even with the right password
        error = await in_thread(login_error, port, "alice", "s3cret")
        assert error.startswith("421"), error
