"""What the database commands share: the URL option, running async work, errors."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

__all__ = ("database_url_option", "gateway_command", "run_with_engine")

T = TypeVar("T")

database_url_option = click.option(
    "--database-url",
    "database_url",
    envvar="GATEWAY_DATABASE_URL",
    show_envvar=True,
    metavar="URL",
    help=(
        "SQLAlchemy URL of the accounts database, e.g. postgresql://user@host/db or "
        "sqlite:///path/gateway.sqlite3 (default: sqlite:///gateway.sqlite3)."
    ),
)


def gateway_command() -> list[str]:
    """How to run this ``gateway`` again, from any directory: for hints that name a command.

    The console script this process was started as (``.venv/bin/gateway``, which is not
    on PATH unless the virtualenv is active), else the one installed next to this
    Python, else this Python with ``-m gateway.cli``.
    """
    started_as = sys.argv[0] if sys.argv else ""
    if os.path.basename(started_as) == "gateway" and os.path.isfile(started_as):
        return [os.path.abspath(started_as)]
    beside = os.path.join(os.path.dirname(sys.executable), "gateway")
    if os.path.isfile(beside) and os.access(beside, os.X_OK):
        return [beside]
    return [sys.executable, "-m", "gateway.cli"]


def run_with_engine(
    url: str | None, work: Callable[[Any], Awaitable[T]], *, check_schema: bool = True
) -> T:
    """Run ``work(engine)``; turn account, schema and connection errors into clear exits.

    A SQLite database that does not exist yet is created at the current schema, as the
    server does on its first start; any other database must be migrated explicitly.
    """
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from gateway.users.database import schema
    from gateway.users.database.diagnose import URL_FORMS, explain
    from gateway.users.database.engine import create_engine
    from gateway.users.database.errors import AccountError, SchemaMismatch
    from gateway.users.database.urls import database_url

    try:
        resolved = database_url(url)
    except (ArgumentError, ValueError):  # not echoed: the text may hold a password
        raise click.ClickException(
            "bad database URL (--database-url or GATEWAY_DATABASE_URL): it does not parse; "
            f"give a URL such as {URL_FORMS}"
        ) from None
    try:
        # loads the driver: an unknown scheme or a driver not installed fails here
        engine = create_engine(resolved)
    except (ArgumentError, ImportError, OSError) as exc:
        raise click.ClickException(explain(exc, resolved)) from None

    async def body() -> T:
        try:
            if check_schema:
                if resolved.get_backend_name() == "sqlite" and await schema.is_empty(engine):
                    await schema.upgrade(engine)
                await schema.check_schema(engine)
            return await work(engine)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(body())
    except (AccountError, SchemaMismatch, SQLAlchemyError, OSError, TimeoutError) as exc:
        raise click.ClickException(explain(exc, resolved)) from None
