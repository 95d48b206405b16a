"""Quotas: limits per account and shared folder, and the usage they are checked against.

Revision ID: 0006_quotas
Revises: 0005_virtual_folders
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_quotas"
down_revision: str | Sequence[str] | None = "0005_virtual_folders"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ACCOUNT_LIMITS = ("max_bytes", "max_files", "upload_per_day", "upload_per_month",
                   "download_per_day", "download_per_month")


def _counters() -> list[sa.Column]:
    return [
        sa.Column("bytes", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("files", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("reserved", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("updated_at", sa.Float(), nullable=False),
    ]


def _account_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                   name=op.f(f"fk_{table}_user_id_users"))


def upgrade() -> None:
    # new tables only: existing accounts keep everything they had and get no quota
    op.create_table(
        "account_quotas",
        sa.Column("user_id", sa.Integer(), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=True) for name in _ACCOUNT_LIMITS),
        sa.Column("updated_at", sa.Float(), nullable=False),
        _account_fk("account_quotas"),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_account_quotas")),
    )
    op.create_table(
        "account_usage",
        sa.Column("user_id", sa.Integer(), nullable=False),
        *_counters(),
        _account_fk("account_usage"),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_account_usage")),
    )
    op.create_table(
        "transfer_usage",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(10), nullable=False),
        sa.Column("uploaded", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("downloaded", sa.BigInteger(), nullable=False, server_default="0"),
        _account_fk("transfer_usage"),
        sa.PrimaryKeyConstraint("user_id", "period", name=op.f("pk_transfer_usage")),
    )
    op.create_table(
        "folder_quotas",
        sa.Column("folder", sa.String(255), nullable=False),
        sa.Column("max_bytes", sa.BigInteger(), nullable=True),
        sa.Column("max_files", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("folder", name=op.f("pk_folder_quotas")),
    )
    op.create_table(
        "folder_usage",
        sa.Column("folder", sa.String(255), nullable=False),
        *_counters(),
        sa.PrimaryKeyConstraint("folder", name=op.f("pk_folder_usage")),
    )


def downgrade() -> None:
    for table in ("folder_usage", "folder_quotas", "transfer_usage", "account_usage",
                  "account_quotas"):
        op.drop_table(table)
