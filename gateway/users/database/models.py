"""The accounts schema as SQLAlchemy models.

The tables change only through Alembic revisions in ``migrations/`` next to this module;
these models are what the code reads and writes, and the initial revision creates exactly
them.
Timestamps are epoch seconds (floats) so that SQLite and PostgreSQL compare them the
same way without dialect-specific date arithmetic.
"""

from __future__ import annotations

from typing import ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = (
    "Base",
    "UserRow",
    "PermissionRow",
    "SessionRow",
    "LoginFailureRow",
    "NAMING_CONVENTION",
)

#: Named constraints, so migrations can drop or alter them by name on every dialect.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    # Every model is mapped to a plain Table (DeclarativeBase types it as any
    # FromClause), so ``Model.__table__`` can go to insert(), update() and delete().
    __table__: ClassVar[Table]


class UserRow(Base):
    """One account.  ``password_hash`` is an argon2id hash or NULL (no password)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    login: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    password_hash: Mapped[str | None] = mapped_column(Text, nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    home_path: Mapped[str] = mapped_column(Text, nullable=False, default="/")
    #: a local path or a storage URL (``s3://bucket/prefix``, ``memory://``)
    storage_root: Mapped[str] = mapped_column(Text, nullable=False)
    #: the code page file names travel in (``cp1251``...); NULL: the listener's
    encoding: Mapped[str | None] = mapped_column(String(64), nullable=True)
    maximum_connections: Mapped[int | None] = mapped_column(Integer, nullable=True)
    read_speed_limit: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    write_speed_limit: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    read_speed_limit_per_connection: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    write_speed_limit_per_connection: Mapped[int | None] = mapped_column(
        BigInteger, nullable=True
    )
    #: client networks (CIDR strings) the account may log in from; NULL: any
    allow_from: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    #: client networks it may not log in from (they win over allow_from); NULL: none
    deny_from: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    #: file name patterns new files must match; NULL: any name
    allow_names: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    #: file name patterns nothing may be created under; NULL: none
    deny_names: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    #: denied names are also hidden from listings and unreachable
    hide_denied: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    #: patterns match with regard to case
    names_case_sensitive: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    #: bytes an upload may make a file at most; NULL: no limit
    max_file_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)
    updated_at: Mapped[float] = mapped_column(Float, nullable=False)

    permissions: Mapped[list[PermissionRow]] = relationship(
        back_populates="user",
        cascade="all, delete-orphan",
        order_by="PermissionRow.path",
        lazy="selectin",
    )


class PermissionRow(Base):
    """Rights on a virtual path and below it; the nearest parent rule wins."""

    __tablename__ = "permissions"
    __table_args__ = (UniqueConstraint("user_id", "path", name="uq_permissions_user_id_path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    path: Mapped[str] = mapped_column(Text, nullable=False)
    readable: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    writable: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)

    user: Mapped[UserRow] = relationship(back_populates="permissions")


class SessionRow(Base):
    """A logged-in session holding one of its user's connection slots.

    Rows are written only for users with a ``maximum_connections`` limit, so every
    node sharing the database sees the same count.  ``node`` identifies the gateway
    process; it refreshes ``heartbeat_at`` of its rows, and rows whose heartbeat is
    older than the stale timeout belong to a dead node and no longer count.
    """

    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_user_id", "user_id"), Index("ix_sessions_node", "node"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    node: Mapped[str] = mapped_column(String(64), nullable=False)
    started_at: Mapped[float] = mapped_column(Float, nullable=False)
    heartbeat_at: Mapped[float] = mapped_column(Float, nullable=False)


class LoginFailureRow(Base):
    """Password tries counted against a client network or a login, shared by every node.

    ``scope`` is "network" (a client's /32 or /64) or "login" (the name typed at USER);
    ``key`` is the network or the login (a digest when it is long or not plain text).
    ``failures`` counts tries running or failed since ``updated_at`` minus
    ``forget_after``; ``banned_until`` is the end of a ban or lock (0: none).  Rows
    older than ``forget_after`` and not banned mean nothing and are purged.
    """

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_updated_at", "updated_at"),)

    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    updated_at: Mapped[float] = mapped_column(Float, nullable=False)
    banned_until: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
