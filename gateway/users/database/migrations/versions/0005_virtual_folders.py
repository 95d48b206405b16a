"""Virtual folders: named storage roots and where accounts mount them.

Revision ID: 0005_virtual_folders
Revises: 0004_account_policy
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_virtual_folders"
down_revision: str | Sequence[str] | None = "0004_account_policy"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # new tables only: existing accounts keep exactly what they had (no mounts)
    op.create_table(
        "folders",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("storage_root", sa.Text(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_folders")),
        sa.UniqueConstraint("name", name=op.f("uq_folders_name")),
    )
    op.create_table(
        "account_mounts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("folder_id", sa.Integer(), nullable=False),
        sa.Column("read_only", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_account_mounts_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["folder_id"],
            ["folders.id"],
            name=op.f("fk_account_mounts_folder_id_folders"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_mounts")),
        sa.UniqueConstraint("user_id", "path", name="uq_account_mounts_user_id_path"),
    )
    op.create_index("ix_account_mounts_folder_id", "account_mounts", ["folder_id"])


def downgrade() -> None:
    op.drop_index("ix_account_mounts_folder_id", table_name="account_mounts")
    op.drop_table("account_mounts")
    op.drop_table("folders")
