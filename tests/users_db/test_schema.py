"""The server's side of migrations: refuse an old schema, create the embedded one."""

from __future__ import annotations

import asyncio
import ftplib
from pathlib import Path

import pytest

from gateway.users.database import SchemaMismatch, schema
from gateway.users.database.engine import create_engine
from tests.users_db.conftest import add_account, ftp_login, in_thread


async def test_refuses_to_start_on_an_older_schema(database_url: str, make_manager) -> None:
    engine = create_engine(database_url)
    try:
        await schema.downgrade(engine, "base")
    finally:
        await engine.dispose()
    manager = make_manager(database_url, create_schema=False)
    with pytest.raises(SchemaMismatch, match="gateway db upgrade"):
        await manager.connect()


async def test_refuses_a_schema_newer_than_the_code(database_url: str, make_manager) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.exec_driver_sql("UPDATE alembic_version SET version_num = 'ffff_future'")
    finally:
        await engine.dispose()
    with pytest.raises(SchemaMismatch, match="newer than this gateway"):
        await make_manager(database_url).connect()


async def test_postgresql_is_never_created_implicitly(
    database_kind: str, empty_database_url: str, make_manager
) -> None:
    manager = make_manager(empty_database_url)
    if database_kind == "sqlite":
        await manager.connect()  # the embedded database is created on first start
        created = Path(empty_database_url.split(":///", 1)[1])
        assert await asyncio.to_thread(created.exists)
        engine = create_engine(empty_database_url)
        try:
            assert await schema.current_revision(engine) == schema.head_revision()
        finally:
            await engine.dispose()
    else:
        with pytest.raises(SchemaMismatch, match="gateway db upgrade"):
            await manager.connect()


async def test_first_login_on_a_new_sqlite_file(tmp_path: Path, root: Path, make_manager, make_server) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'gateway.sqlite3'}"  # plain URL: aiosqlite is implied
    manager = make_manager(url)
    server = await make_server(manager)
    with pytest.raises(ftplib.error_perm, match="530"):
        await in_thread(ftp_login, server.server_port, "alice", "s3cret")
    await add_account(f"sqlite+aiosqlite:///{tmp_path / 'new' / 'gateway.sqlite3'}", "alice", root=root)
    manager.cache.invalidate()
    ftp = await in_thread(ftp_login, server.server_port, "alice", "secret")
    await in_thread(ftp.quit)
