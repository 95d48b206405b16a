"""Per-account encoding: the code page an account's file names travel in.

Revision ID: 0002_user_encoding
Revises: 0001_accounts
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_user_encoding"
down_revision: str | Sequence[str] | None = "0001_accounts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # NULL: the listener's encoding, which is what every existing account had
    op.add_column("users", sa.Column("encoding", sa.String(length=64), nullable=True))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN natively (SQLite 3.35 and later), not a batch rebuild:
    # rebuilding drops the old users table, and with foreign keys on that deletes every
    # permission and session row through ON DELETE CASCADE
    if op.get_bind().dialect.name == "sqlite":
        import sqlite3

        if sqlite3.sqlite_version_info < (3, 35):
            raise RuntimeError(
                f"downgrading below 0002 on SQLite needs SQLite 3.35 or later (this Python "
                f"has {sqlite3.sqlite_version}): rebuilding the users table instead would "
                "delete every permission through its foreign keys"
            )
    op.drop_column("users", "encoding")
