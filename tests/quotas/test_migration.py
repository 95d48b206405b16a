"""Revision 0006: the quota tables, added to a database with accounts and removed
again, on SQLite and PostgreSQL; and the migrated tables are the models."""

from __future__ import annotations

from sqlalchemy import text

from gateway.users.database import schema
from gateway.users.database.engine import create_engine
from gateway.users.database.quotamodels import (
    AccountQuotaRow,
    AccountUsageRow,
    FolderQuotaRow,
    FolderUsageRow,
    TransferUsageRow,
)
from tests.users_db.conftest import schema_differences, table_names

BEFORE, AFTER = "0005_virtual_folders", "0006_quotas"
TABLES = {row.__tablename__ for row in (AccountQuotaRow, AccountUsageRow, TransferUsageRow,
                                        FolderQuotaRow, FolderUsageRow)}



async def test_upgrade_keeps_accounts_and_downgrade_removes_quotas(empty_database_url: str) -> None:
    engine = create_engine(empty_database_url)
    try:
        await schema.upgrade(engine, BEFORE)
        async with engine.begin() as connection:
            await connection.execute(text(
                "INSERT INTO users (login, enabled, home_path, storage_root, created_at, updated_at,"
                " hide_denied, names_case_sensitive, max_file_size) VALUES ('alice', true, '/',"
                " '/srv/alice', 0, 0, false, false, 1000)"
            ))
        await schema.upgrade(engine, AFTER)
        assert await schema.current_revision(engine) == AFTER
        async with engine.begin() as connection:
            assert TABLES <= await table_names(connection)
            await connection.execute(text(
                "INSERT INTO account_quotas (user_id, max_bytes, updated_at)"
                " SELECT id, 5000, 0 FROM users WHERE login = 'alice'"
            ))
            await connection.execute(text(
                "INSERT INTO account_usage (user_id, updated_at) SELECT id, 0 FROM users"
            ))
            await connection.execute(text(
                "INSERT INTO transfer_usage (user_id, period, uploaded) SELECT id, '2026-12', 7 FROM users"
            ))
            await connection.execute(text(
                "INSERT INTO folder_quotas (folder, max_files, updated_at) VALUES ('shared', 3, 0)"
            ))
        async with engine.connect() as connection:
            kept = (await connection.execute(text(
                "SELECT u.login, u.max_file_size, q.max_bytes, q.max_files, a.bytes, a.files,"
                " a.reserved, t.uploaded, t.downloaded FROM users u"
                " JOIN account_quotas q ON q.user_id = u.id JOIN account_usage a ON a.user_id = u.id"
                " JOIN transfer_usage t ON t.user_id = u.id"
            ))).all()
        assert [tuple(row) for row in kept] == [("alice", 1000, 5000, None, 0, 0, 0, 7, 0)]

        await schema.downgrade(engine, BEFORE)
        assert await schema.current_revision(engine) == BEFORE
        async with engine.connect() as connection:
            assert not TABLES & await table_names(connection)
            left = (await connection.execute(text("SELECT login, max_file_size FROM users"))).all()
        assert [tuple(row) for row in left] == [("alice", 1000)]
        await schema.upgrade(engine, "head")  # and up again on the same data
        async with engine.begin() as connection:
            assert TABLES <= await table_names(connection)
            # an account deleted takes its quota and usage with it
            await connection.execute(text(
                "INSERT INTO account_usage (user_id, updated_at) SELECT id, 0 FROM users"
            ))
            await connection.execute(text("DELETE FROM users"))
            assert (await connection.execute(text("SELECT count(*) FROM account_usage"))).scalar() == 0
    finally:
        await engine.dispose()


async def test_migrated_quota_tables_are_the_models(database_url: str) -> None:
    differences = await schema_differences(database_url)
    assert [d for d in differences if any(name in repr(d) for name in TABLES)] == []
