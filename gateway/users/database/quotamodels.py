"""The quota tables: limits per account and per shared folder, and their usage.

Usage is shared by every node using the database and changed only by atomic
``UPDATE ... SET bytes = bytes + :delta`` statements, never read, changed and written
back.  ``reserved`` holds the bytes uploads still running have claimed: they count
against ``max_bytes`` until the upload commits (then they become ``bytes``) or rolls
back (then they are given back).  Byte counts are BIGINT; NULL limits mean none.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.users.database.models import Base

__all__ = (
    "AccountQuotaRow",
    "AccountUsageRow",
    "FolderQuotaRow",
    "FolderUsageRow",
    "TransferUsageRow",
)


class AccountQuotaRow(Base):
    """An account's limits.  Its usage is counted while this row exists, so an
    account without one costs an upload nothing."""

    __tablename__ = "account_quotas"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    max_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    max_files: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    upload_per_day: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    upload_per_month: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    download_per_day: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    download_per_month: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    updated_at: Mapped[float] = mapped_column(Float, nullable=False)


class AccountUsageRow(Base):
    """What an account's files hold, and what its running uploads claimed."""

    __tablename__ = "account_usage"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    bytes: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    files: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    reserved: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    updated_at: Mapped[float] = mapped_column(Float, nullable=False)


class TransferUsageRow(Base):
    """Bytes an account moved in one period: a day ("2026-12-02") or a month
    ("2026-12"), UTC.  Old periods are kept (they are small) for reporting."""

    __tablename__ = "transfer_usage"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    period: Mapped[str] = mapped_column(String(10), primary_key=True)
    uploaded: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    downloaded: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class FolderQuotaRow(Base):
    """A shared (virtual) folder's limits, by the folder's name."""

    __tablename__ = "folder_quotas"

    folder: Mapped[str] = mapped_column(String(255), primary_key=True)
    max_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    max_files: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    updated_at: Mapped[float] = mapped_column(Float, nullable=False)


class FolderUsageRow(Base):
    """What a shared folder holds, whoever wrote it."""

    __tablename__ = "folder_usage"

    folder: Mapped[str] = mapped_column(String(255), primary_key=True)
    bytes: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    files: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    reserved: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    updated_at: Mapped[float] = mapped_column(Float, nullable=False)
