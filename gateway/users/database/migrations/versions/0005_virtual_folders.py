"""Virtual folders: named storage roots and where accounts mount them.

Revision ID: 0005_virtual_folders
Revises: 0004_account_policy
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0005_virtual_folders"
down_revision: str | Sequence[str] | None = "0004_account_policy"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
