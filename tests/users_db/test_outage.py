"""The database going away: 421 at login, never a hang or a crash; then recovery."""

from __future__ import annotations

import asyncio
import ftplib
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from tests.proxy import FaultProxy
from tests.users_db.conftest import add_account, eventually, ftp_connect, ftp_login, in_thread


class SqliteOutage:
    """SQLite "unreachable": another process holds the file's exclusive lock."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._path = make_url(url).database
        self._lock: sqlite3.Connection | None = None

    def cut(self) -> None:
        # taken off the event loop (see the test): the server must keep running meanwhile
        self._lock = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        self._lock.execute("BEGIN EXCLUSIVE")

    def restore(self) -> None:
        assert self._lock is not None
        self._lock.execute("ROLLBACK")
        self._lock.close()
        self._lock = None


class PostgresOutage:
    """PostgreSQL unreachable: the link through a relay is cut."""

    def __init__(self, proxy: FaultProxy, url: str) -> None:
        self.proxy = proxy
        self.url = url

    def cut(self) -> None:
        self.proxy.cut()

    def restore(self) -> None:
        self.proxy.restore()


@pytest.fixture
async def outage(database_kind: str, database_url: str) -> AsyncIterator[Any]:
    if database_kind == "sqlite":
        yield SqliteOutage(database_url)
        return
    url = make_url(database_url)
    proxy = FaultProxy((url.host or "127.0.0.1", url.port or 5432))
    await proxy.start()
    try:
        yield PostgresOutage(
            proxy,
            url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False),
        )
    finally:
        await proxy.close()


async def test_outage_gives_421_and_recovers(
    database_url: str, outage: Any, root: Path, make_manager, make_server
) -> None:
    await add_account(database_url, "alice", "s3cret", root=root, maximum_connections=5)
    manager = make_manager(outage.url, cache_ttl=0.1, query_timeout=1.0)
    server = await make_server(manager, login_timeout=30)
    port = server.server_port

    def login() -> str:
        ftp = ftp_connect(port)
        try:
            reply = ftp.login("alice", "s3cret")
        except ftplib.error_temp as exc:  # 4xx
            return str(exc)
        ftp.quit()
        return reply

    assert (await in_thread(login)).startswith("230")
    # in a thread: waiting for the SQLite lock must not stop the server's loop, which
    # may be finishing the last session's write
    await asyncio.to_thread(outage.cut)
    try:
        async def cache_expired() -> bool:
            return not manager.cache._entries or all(
                expires < time.monotonic() for expires, _ in manager.cache._entries.values()
            )

        await eventually(cache_expired)
        started = time.monotonic()
        reply = await in_thread(login)
        assert reply.startswith("421"), reply
        assert time.monotonic() - started < 5  # bounded by the query timeout, no hang

        # the session is closed after 421, as RFC 959 says
        def closed_after_421() -> bytes:
            ftp = ftp_connect(port)
            try:
                ftp.sock.sendall(b"USER alice\r\n")
                return ftp.sock.recv(1024) + ftp.sock.recv(1024)
            finally:
                ftp.close()

        assert (await in_thread(closed_after_421)).startswith(b"421")
    finally:
        await asyncio.to_thread(outage.restore)

    async def recovered() -> bool:
        return (await in_thread(login)).startswith("230")

    await eventually(recovered, timeout=15)
    # the server kept serving: a plain login still works and no slot leaked
    ftp = await in_thread(ftp_login, port, "alice", "s3cret")
    await in_thread(ftp.quit)


@pytest.mark.parametrize("database_kind", ["postgresql"])
async def test_dead_pooled_connections_are_replaced_without_a_failed_login(
    database_url: str, root: Path, make_manager, make_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL restarted (every server process of the pool killed): the next login
    pings the idle connections, finds them dead and uses new ones; no login fails."""
    from sqlalchemy import text

    from gateway.users.database import engine as engine_module
    from gateway.users.database.engine import create_engine

    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE", 0.0)  # any idle one is pinged
    await add_account(database_url, "alice", "s3cret", root=root)
    manager = make_manager(database_url, cache_ttl=0)
    server = await make_server(manager)
    ftp = await in_thread(ftp_login, server.server_port, "alice", "s3cret")
    await in_thread(ftp.quit)

    database = make_url(database_url).database
    admin = create_engine(database_url)
    try:
        async with admin.connect() as connection:
            killed = (await connection.execute(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = :name AND pid <> pg_backend_pid()"
            ), {"name": database})).scalar_one()
    finally:
        await admin.dispose()
    assert killed >= 1  # the pool's connections were there, and are gone now

    for _ in range(3):
        ftp = await in_thread(ftp_login, server.server_port, "alice", "s3cret")
        await in_thread(ftp.quit)
