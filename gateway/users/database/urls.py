"""Which database: a SQLAlchemy URL from a flag, ``GATEWAY_DATABASE_URL``, or the default."""

from __future__ import annotations

import os

from sqlalchemy.engine import URL, make_url

__all__ = ("DEFAULT_DATABASE_URL", "ENV_DATABASE_URL", "database_url", "normalize_url", "safe_url")

ENV_DATABASE_URL = "GATEWAY_DATABASE_URL"
#: The embedded default: a SQLite file next to where the gateway runs, created on first
#: start, so a single node needs no database server.
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///gateway.sqlite3"


def normalize_url(url: str | URL) -> URL:
    """The async driver for a plain URL: ``postgresql://`` means asyncpg,
    ``sqlite://`` means aiosqlite; an explicit driver is kept."""
    parsed = make_url(url) if isinstance(url, str) else url
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgres", "postgresql") and driver in ("", "psycopg2", "asyncpg"):
        return parsed.set(drivername="postgresql+asyncpg")
    if backend == "sqlite" and driver in ("", "pysqlite", "aiosqlite"):
        return parsed.set(drivername="sqlite+aiosqlite")
    return parsed


def database_url(explicit: str | URL | None = None) -> URL:
    """The URL to use: the explicit one, else the environment, else the SQLite default."""
    return normalize_url(explicit or os.environ.get(ENV_DATABASE_URL) or DEFAULT_DATABASE_URL)


def safe_url(url: str | URL) -> str:
    """The URL with its password masked, for messages and logs."""
    parsed = make_url(url) if isinstance(url, str) else url
    return parsed.render_as_string(hide_password=True)
