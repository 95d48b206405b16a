"""The SQLAlchemy async engine, tuned per database for the way the gateway uses it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.users.database.urls import normalize_url

__all__ = ("create_engine",)


def create_engine(url: str | URL, *, query_timeout: float = 5.0, **options: Any) -> AsyncEngine:
    """An engine whose every wait is bounded by ``query_timeout``.

    PostgreSQL connections are pinged on checkout, so after a database restart the
    pool replaces dead connections by itself instead of failing logins.  SQLite gets
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
            pool_pre_ping=True,
            pool_size=10,
            max_overflow=20,
            pool_timeout=query_timeout,
            connect_args={"timeout": query_timeout, "command_timeout": query_timeout},
        )
    settings.update(options)
    engine = create_async_engine(url, **settings)
    if url.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
