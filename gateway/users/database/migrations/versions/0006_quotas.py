"""Quotas: limits per account and shared folder, and the usage they are checked against.

Revision ID: 0006_quotas
Revises: 0005_virtual_folders
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0006_quotas"
down_revision: str | Sequence[str] | None = "0005_virtual_folders"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
