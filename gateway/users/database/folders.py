"""Virtual folders in the database: named storage roots, and where accounts mount them.

A folder (``folders``) is a storage root with its options, mounted by any number of
accounts; a mount (``account_mounts``) puts one folder at one virtual path of one
account's tree, read-only or not.  Deleting an account deletes its mounts; a folder
still mounted somewhere cannot be deleted (the foreign key restricts it).  The
tables change only through the Alembic revisions (``0005_virtual_folders``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from gateway.users.database.models import Base

__all__ = ("FolderRow", "MountRow")


class FolderRow(Base):
    """A named storage root (a path or a URL) and its storage options."""

    __tablename__ = "folders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    storage_root: Mapped[str] = mapped_column(Text, nullable=False)
    #: merged over the server's storage options for this root (credentials, endpoint...)
    options: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)
    updated_at: Mapped[float] = mapped_column(Float, nullable=False)


class MountRow(Base):
    """One folder at one virtual path of one account's tree."""

    __tablename__ = "account_mounts"
    __table_args__ = (
        UniqueConstraint("user_id", "path", name="uq_account_mounts_user_id_path"),
        Index("ix_account_mounts_folder_id", "folder_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    path: Mapped[str] = mapped_column(Text, nullable=False)
    folder_id: Mapped[int] = mapped_column(ForeignKey("folders.id", ondelete="RESTRICT"), nullable=False)
    read_only: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
