"""Revision 0005: the folders tables, added to a database with accounts and removed
again, on SQLite and PostgreSQL; and the migrated tables are the models."""

from __future__ import annotations

from sqlalchemy import text

from gateway.users.database import schema
from gateway.users.database.engine import create_engine
from gateway.users.database.folders import FolderRow, MountRow
from tests.users_db.conftest import schema_differences, table_names

BEFORE, AFTER = "0004_account_policy", "0005_virtual_folders"
TABLES = {FolderRow.__tablename__, MountRow.__tablename__}



async def test_upgrade_from_0004_keeps_accounts_and_downgrade_removes_folders(empty_database_url: str) -> None:
    engine = create_engine(empty_database_url)
    try:
        await schema.upgrade(engine, BEFORE)
        async with engine.begin() as connection:
            await connection.execute(text(
                "INSERT INTO users (login, enabled, home_path, storage_root, created_at, updated_at,"
                " hide_denied, names_case_sensitive) VALUES ('alice', true, '/', '/srv/alice', 0, 0,"
                " false, false)"
            ))
            await connection.execute(text(
                "INSERT INTO permissions (user_id, path, readable, writable)"
                " SELECT id, '/pub', true, false FROM users WHERE login = 'alice'"
            ))
        await schema.upgrade(engine, AFTER)
        assert await schema.current_revision(engine) == AFTER
        async with engine.begin() as connection:
            assert TABLES <= await table_names(connection)
            await connection.execute(text(
                "INSERT INTO folders (name, storage_root, options, created_at, updated_at)"
                " VALUES ('shared', 's3://b/shared', '{\"region_name\": \"x\"}', 0, 0)"
            ))
            await connection.execute(text(
                "INSERT INTO account_mounts (user_id, path, folder_id, read_only)"
                " SELECT u.id, '/shared', f.id, true FROM users u, folders f"
            ))
        async with engine.connect() as connection:
            kept = (await connection.execute(text(
                "SELECT u.login, p.path, m.path, f.name FROM users u"
                " JOIN permissions p ON p.user_id = u.id"
                " JOIN account_mounts m ON m.user_id = u.id JOIN folders f ON f.id = m.folder_id"
            ))).all()
        assert [tuple(row) for row in kept] == [("alice", "/pub", "/shared", "shared")]

        await schema.downgrade(engine, BEFORE)
        assert await schema.current_revision(engine) == BEFORE
        async with engine.connect() as connection:
            assert not TABLES & await table_names(connection)
            left = (await connection.execute(text(
                "SELECT u.login, p.path FROM users u JOIN permissions p ON p.user_id = u.id"
            ))).all()
        assert [tuple(row) for row in left] == [("alice", "/pub")]
        await schema.upgrade(engine, AFTER)  # and up again on the same data
        async with engine.connect() as connection:
            assert TABLES <= await table_names(connection)
    finally:
        await engine.dispose()


async def test_migrated_folder_tables_are_the_models(database_url: str) -> None:
    differences = await schema_differences(database_url)
    assert [d for d in differences if any(name in repr(d) for name in TABLES)] == []
