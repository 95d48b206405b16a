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
    # batch mode: SQLite drops a column by rebuilding the table
    with op.batch_alter_table("users") as batch:
        batch.drop_column("encoding")
