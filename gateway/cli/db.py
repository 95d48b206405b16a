"""``gateway db``: move the accounts schema along its Alembic history."""

from __future__ import annotations

from typing import Any

import click

from gateway.cli._common import database_url_option, run_with_engine

__all__ = ("db",)


@click.group()
def db() -> None:
    """Create and migrate the accounts database schema."""


@db.command()
@database_url_option
@click.argument("revision", default="head")
def upgrade(database_url: str | None, revision: str) -> None:
    """Migrate the schema up to REVISION (default: the newest, "head")."""
    from gateway.users.database import schema

    async def work(engine: Any) -> str | None:
        await schema.upgrade(engine, revision)
        return await schema.current_revision(engine)

    current = run_with_engine(database_url, work, check_schema=False)
    click.echo(f"schema at revision {current or 'base (empty)'}")


@db.command()
@database_url_option
@click.argument("revision", default="-1")
def downgrade(database_url: str | None, revision: str) -> None:
    """Migrate the schema down to REVISION (default: one step; "base" removes it all)."""
    from gateway.users.database import schema

    async def work(engine: Any) -> str | None:
        await schema.downgrade(engine, revision)
        return await schema.current_revision(engine)

    current = run_with_engine(database_url, work, check_schema=False)
    click.echo(f"schema at revision {current or 'base (empty)'}")


@db.command()
@database_url_option
def current(database_url: str | None) -> None:
    """Show the schema revision of the database and the one this gateway needs."""
    from gateway.users.database import schema

    async def work(engine: Any) -> tuple[str | None, str]:
        return await schema.current_revision(engine), schema.head_revision()

    revision, head = run_with_engine(database_url, work, check_schema=False)
    state = "up to date" if revision == head else "run 'gateway db upgrade'"
    click.echo(f"database: {revision or 'base (empty)'}\ngateway:  {head}\n{state}")
