"""The event outbox: every operation, kept until its actions delivered it.

Revision ID: 0007_event_outbox
Revises: 0006_quotas
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0007_event_outbox"
down_revision: str | Sequence[str] | None = "0006_quotas"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
