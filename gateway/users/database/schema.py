"""The schema's revision: where the Alembic history lives, checking and migrating.

The server refuses to run on a schema other than the one its code expects (it would
fail later, at some login, with a confusing SQL error); operators move the schema with
``gateway db upgrade`` / ``gateway db downgrade``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.users.database.errors import MigrationsMissing, SchemaMismatch
from gateway.users.database.urls import safe_url

__all__ = (
    "migrations_directory",
    "alembic_config",
    "head_revision",
    "current_revision",
    "check_schema",
    "upgrade",
    "downgrade",
    "is_empty",
)


#: The Alembic environment and revisions, shipped inside the package (package data), so
#: an installed wheel migrates from wherever it runs.
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def migrations_directory() -> Path:
    """The package's Alembic history, or the directory ``GATEWAY_MIGRATIONS`` names."""
    override = os.environ.get("GATEWAY_MIGRATIONS")
    return Path(override) if override else MIGRATIONS


def _require_history(directory: Path) -> None:
    """Refuse a directory that is not an Alembic history, naming what to do about it."""
    if (directory / "env.py").is_file() and (directory / "versions").is_dir():
        return
    override = os.environ.get("GATEWAY_MIGRATIONS")
    if override:
        raise MigrationsMissing(
            f"the schema history is missing: GATEWAY_MIGRATIONS={override} has no env.py "
            "and versions/; unset GATEWAY_MIGRATIONS to use the history installed with "
            "gateway, or point it at a directory that has them"
        )
    raise MigrationsMissing(
        f"the schema history is missing from this installation ({directory} has no env.py "
        "and versions/): reinstall gateway (pip install --force-reinstall gateway)"
    )


def alembic_config(url: URL | str | None = None) -> Config:
    """An Alembic config for the project's history, independent of the working directory.

    :raises MigrationsMissing: the history is not there (a broken installation, a wrong
        ``GATEWAY_MIGRATIONS``)
    """
    directory = migrations_directory()
    _require_history(directory)
    ini = directory / "alembic.ini"
    config = Config(str(ini)) if ini.exists() else Config()
    config.set_main_option("script_location", str(directory))
    if url is not None:
        text = url.render_as_string(hide_password=False) if isinstance(url, URL) else url
        # ConfigParser interpolation would choke on '%' in passwords
        config.set_main_option("sqlalchemy.url", text.replace("%", "%%"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the migrations directory holds no revision"
    return head


def _current(sync_connection: Any) -> str | None:
    return MigrationContext.configure(sync_connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(_current)


async def is_empty(engine: AsyncEngine) -> bool:
    """True for a database with no tables at all (a SQLite file just created)."""
    async with engine.connect() as connection:
        names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    return not names


async def check_schema(engine: AsyncEngine) -> None:
    """Raise :class:`SchemaMismatch` with the command to run unless the schema is at head."""
    head = head_revision()
    current = await current_revision(engine)
    if current == head:
        return
    url = safe_url(engine.url)
    script = ScriptDirectory.from_config(alembic_config())
    known = {revision.revision for revision in script.walk_revisions()}
    if current is not None and current not in known:
        raise SchemaMismatch(
            f"the database {url} has schema revision {current}, newer than this gateway "
            f"knows (head {head}): upgrade the gateway, or run "
            f"'gateway db downgrade' with the newer version first"
        )
    raise SchemaMismatch(
        f"the database {url} has schema revision {current or 'none (empty)'}, "
        f"this gateway needs {head}: run 'gateway db upgrade --database-url URL' "
        f"(or with GATEWAY_DATABASE_URL set)"
    )


def _run(sync_connection: Any, config: Config, action: str, revision: str) -> None:
    config.attributes["connection"] = sync_connection
    getattr(command, action)(config, revision)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    config = alembic_config(engine.url)
    async with engine.begin() as connection:
        await connection.run_sync(_run, config, "upgrade", revision)


async def downgrade(engine: AsyncEngine, revision: str = "-1") -> None:
    config = alembic_config(engine.url)
    async with engine.begin() as connection:
        await connection.run_sync(_run, config, "downgrade", revision)
