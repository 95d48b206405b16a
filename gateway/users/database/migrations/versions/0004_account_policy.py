"""Per-account storage policy: client networks, file name rules, largest upload.

Revision ID: 0004_account_policy
Revises: 0003_login_failures
Create Date: 2026-12-19
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_account_policy"
down_revision: str | Sequence[str] | None = "0003_login_failures"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: the lists (CIDR strings, name patterns) as JSON arrays; NULL: no rule
_LISTS = ("allow_from", "deny_from", "allow_names", "deny_names")
_FLAGS = ("hide_denied", "names_case_sensitive")


def upgrade() -> None:
    # every new column is NULL or false: existing accounts keep exactly what they had.
    # Plain ADD COLUMN, also on SQLite (no batch rebuild): rebuilding ``users`` there
    # drops the old table, and with foreign keys on that deletes every permission and
    # session row through ON DELETE CASCADE.  A string default keeps it plain.
    for name in _LISTS:
        op.add_column("users", sa.Column(name, sa.JSON(), nullable=True))
    for name in _FLAGS:
        op.add_column("users", sa.Column(name, sa.Boolean(), nullable=False, server_default="0"))
    op.add_column("users", sa.Column("max_file_size", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN, natively (SQLite 3.35 and later), for the same reason
    _require_native_drop_column()
    op.drop_column("users", "max_file_size")
    for name in reversed(_FLAGS):
        op.drop_column("users", name)
    for name in reversed(_LISTS):
        op.drop_column("users", name)


def _require_native_drop_column() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    import sqlite3

    if sqlite3.sqlite_version_info < (3, 35):
        raise RuntimeError(
            f"downgrading below 0004 on SQLite needs SQLite 3.35 or later (this Python has "
            f"{sqlite3.sqlite_version}): rebuilding the users table instead would delete "
            "every permission through its foreign keys"
        )
