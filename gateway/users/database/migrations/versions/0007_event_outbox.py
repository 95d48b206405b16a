"""The event outbox: every operation, kept until its actions delivered it.

Revision ID: 0007_event_outbox
Revises: 0006_quotas
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_event_outbox"
down_revision: str | Sequence[str] | None = "0006_quotas"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "event_outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True,
                  nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=128), nullable=False),
        sa.Column("account", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.Column("claimed_by", sa.String(length=160), nullable=True),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.Column("delivered_at", sa.Float(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_outbox")),
        sa.UniqueConstraint("event_id", "action", name="uq_event_outbox_event_id_action"),
    )
    # the delivery worker's query: rows due, and whether an earlier row of the group waits
    op.create_index("ix_event_outbox_status_next", "event_outbox", ["status", "next_attempt_at"])
    op.create_index("ix_event_outbox_group", "event_outbox", ["action", "account", "status", "id"])


def downgrade() -> None:
    op.drop_index("ix_event_outbox_group", table_name="event_outbox")
    op.drop_index("ix_event_outbox_status_next", table_name="event_outbox")
    op.drop_table("event_outbox")
