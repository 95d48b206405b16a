"""What the database commands share: the URL option, running async work, errors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

__all__ = ("database_url_option", "run_with_engine")

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


def run_with_engine(
    url: str | None, work: Callable[[Any], Awaitable[T]], *, check_schema: bool = True
) -> T:
    """Run ``work(engine)``; turn account, schema and connection errors into clear exits.

    A SQLite database that does not exist yet is created at the current schema, as the
    server does on its first start; any other database must be migrated explicitly.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from gateway.users.database import schema
    from gateway.users.database.engine import create_engine
    from gateway.users.database.errors import AccountError, SchemaMismatch
    from gateway.users.database.urls import database_url, safe_url

    try:
        resolved = database_url(url)
    except Exception as exc:  # sqlalchemy.exc.ArgumentError and friends
        raise click.ClickException(f"bad database URL: {exc}") from None

    async def body() -> T:
        engine = create_engine(resolved)
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
    except (AccountError, SchemaMismatch) as exc:
        raise click.ClickException(str(exc)) from None
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise click.ClickException(
            f"database {safe_url(resolved)} failed: {reason}"
        ) from None
