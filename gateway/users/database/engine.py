"""The SQLAlchemy async engine, tuned per database for the way the gateway uses it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.users.database.urls import normalize_url

__all__ = ("PING_AFTER_IDLE", "create_engine")

#: Seconds a pooled PostgreSQL connection may have been idle and still be used without
#: a ping first.  A busy pool (a login storm) never pings: every checkout would
#: otherwise cost two extra round trips (BEGIN; ; ROLLBACK).
PING_AFTER_IDLE = 2.0


def create_engine(url: str | URL, *, query_timeout: float = 5.0, **options: Any) -> AsyncEngine:
    """An engine whose every wait is bounded by ``query_timeout``.

    PostgreSQL connections idle for more than ``PING_AFTER_IDLE`` seconds are pinged
    on checkout, so after a database restart the pool replaces dead connections by
    itself instead of failing logins; one used a moment ago is trusted as it is.  SQLite gets
    foreign keys (deleting a user deletes its rules and sessions) and a busy timeout;
    its file and directory are created when missing (the embedded default).
    """
    url = normalize_url(url)
    settings: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        settings["connect_args"] = {"timeout": query_timeout}
        if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
            Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    elif url.get_backend_name() == "postgresql":
        settings.update(
            pool_size=10,
            max_overflow=20,
            pool_timeout=query_timeout,
            connect_args={"timeout": query_timeout, "command_timeout": query_timeout},
        )
    settings.update(options)
    engine = create_async_engine(url, **settings)
    if url.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    elif url.get_backend_name() == "postgresql" and not settings.get("pool_pre_ping"):
        event.listen(engine.sync_engine.pool, "checkin", _note_idle)
        event.listen(engine.sync_engine.pool, "checkout", _ping_if_idle)
    return engine


def _note_idle(dbapi_connection: Any, connection_record: Any) -> None:
    if connection_record is not None:
        connection_record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, connection_record: Any, connection_proxy: Any) -> None:
    """Ping a connection that has been idle a while; a dead one is replaced (the pool
    retries the checkout with a new connection on ``DisconnectionError``)."""
    since = connection_record.info.get("idle_since")
    if since is None or time.monotonic() - since < PING_AFTER_IDLE:
        return
    try:
        dbapi_connection.ping()
    except Exception as error:
        raise exc.DisconnectionError(f"pooled connection is gone: {error}") from error


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
