"""The outbox table: one row per (event, action) delivery, kept until it is delivered.

A row is written before the client hears its success reply, and a delivery worker on
any node takes it from there.  Rows of one action and one account are delivered in
the order they were written: a row is claimable only when no earlier row of the same
action and account is still pending.  A claim is a lease (``claimed_by`` and
``lease_until``): on PostgreSQL the claim selects with ``FOR UPDATE SKIP LOCKED``, so
nodes sharing the database never take the same row; a node that dies loses its leases
when they run out, and a node restarting under the same name takes its own back at
once.  ``status`` is "pending", "delivered" or "failed" (given up; kept and retryable).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Float,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapped, aliased, mapped_column

from gateway.users.database.models import Base

__all__ = (
    "STATUSES",
    "Claim",
    "OutboxRow",
    "claim",
    "counts",
    "ensure_table",
    "enqueue",
    "list_rows",
    "mark_delivered",
    "mark_failed_try",
    "purge",
    "release_claims",
    "retry",
)

STATUSES = ("pending", "delivered", "failed")


class OutboxRow(Base):
    """One delivery of one event to one action."""

    __tablename__ = "event_outbox"
    __table_args__ = (
        UniqueConstraint("event_id", "action", name="uq_event_outbox_event_id_action"),
        # the worker's query: the due rows, and whether an earlier one of the group waits
        Index("ix_event_outbox_status_next", "status", "next_attempt_at"),
        Index("ix_event_outbox_group", "action", "account", "status", "id"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    #: the event's id, the same for every action and every attempt
    event_id: Mapped[str] = mapped_column(String(64), nullable=False)
    #: the action's name in the configuration
    action: Mapped[str] = mapped_column(String(128), nullable=False)
    #: the login the event is about ("" when none): the order holds per account
    account: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    path: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: the JSON body, exactly as signed and sent
    body: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    #: the event's time (epoch seconds): the age limit and the latency count from it
    created_at: Mapped[float] = mapped_column(Float, nullable=False)
    next_attempt_at: Mapped[float] = mapped_column(Float, nullable=False)
    claimed_by: Mapped[str | None] = mapped_column(String(160), nullable=True)
    lease_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    delivered_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


outbox = OutboxRow.__table__


@dataclass(frozen=True)
class Claim:
    """A row this node holds the lease of, to deliver now."""

    id: int
    event_id: str
    action: str
    account: str
    body: str
    attempts: int
    created_at: float


async def ensure_table(engine: AsyncEngine) -> None:
    """Create the table in a database of its own (the embedded outbox file); an
    accounts database gets it from its migrations instead."""
    async with engine.begin() as connection:
        await connection.run_sync(lambda sync: outbox.create(sync, checkfirst=True))


async def enqueue(engine: AsyncEngine, rows: Sequence[dict[str, Any]]) -> None:
    """Write rows (event_id, action, account, kind, path, body, created_at) at once."""
    if not rows:
        return
    values = [{**row, "status": "pending", "attempts": 0, "next_attempt_at": row["created_at"]}
              for row in rows]
    async with engine.begin() as connection:
        await connection.execute(insert(outbox), values)


def _claimable(now: float) -> Any:
    earlier = aliased(outbox)
    waits = (
        select(earlier.c.id)
        .where(
            earlier.c.action == outbox.c.action,
            earlier.c.account == outbox.c.account,
            earlier.c.status == "pending",
            earlier.c.id < outbox.c.id,
        )
        .exists()
    )
    return and_(
        outbox.c.status == "pending",
        outbox.c.next_attempt_at <= now,
        or_(outbox.c.lease_until.is_(None), outbox.c.lease_until < now),
        ~waits,
    )


async def claim(engine: AsyncEngine, owner: str, *, lease: float, limit: int,
                now: float | None = None) -> list[Claim]:
    """Take the lease of up to ``limit`` due rows, the first pending one of each
    (action, account) at most, oldest first."""
    now = time.time() if now is None else now
    query = select(outbox.c.id).where(_claimable(now)).order_by(outbox.c.id).limit(limit)
    if engine.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=outbox)
    async with engine.begin() as connection:
        ids = [row[0] for row in await connection.execute(query)]
        if not ids:
            return []
        until = now + lease
        await connection.execute(
            update(outbox)
            .where(outbox.c.id.in_(ids), outbox.c.status == "pending",
                   or_(outbox.c.lease_until.is_(None), outbox.c.lease_until < now))
            .values(claimed_by=owner, lease_until=until)
        )
        rows = await connection.execute(
            select(outbox.c.id, outbox.c.event_id, outbox.c.action, outbox.c.account, outbox.c.body,
                   outbox.c.attempts, outbox.c.created_at)
            .where(outbox.c.id.in_(ids), outbox.c.claimed_by == owner, outbox.c.lease_until == until)
            .order_by(outbox.c.id)
        )
        return [Claim(*row) for row in rows]


async def mark_delivered(engine: AsyncEngine, row_id: int, *, now: float | None = None) -> None:
    now = time.time() if now is None else now
    async with engine.begin() as connection:
        await connection.execute(
            update(outbox).where(outbox.c.id == row_id, outbox.c.status == "pending").values(
                status="delivered", delivered_at=now, attempts=outbox.c.attempts + 1,
                claimed_by=None, lease_until=None, last_error=None,
            )
        )


async def mark_failed_try(engine: AsyncEngine, row_id: int, owner: str, *, error: str,
                          next_attempt_at: float, give_up: bool) -> None:
    """A try failed: back to pending after ``next_attempt_at``, or failed for good."""
    async with engine.begin() as connection:
        await connection.execute(
            update(outbox)
            .where(outbox.c.id == row_id, outbox.c.status == "pending", outbox.c.claimed_by == owner)
            .values(
                status="failed" if give_up else "pending",
                attempts=outbox.c.attempts + 1,
                next_attempt_at=next_attempt_at,
                claimed_by=None, lease_until=None, last_error=error[:2000],
            )
        )


async def release_claims(engine: AsyncEngine, owner_prefix: str) -> int:
    """Drop the leases held under ``owner_prefix`` (this node before a restart)."""
    async with engine.begin() as connection:
        result = await connection.execute(
            update(outbox)
            .where(outbox.c.status == "pending", outbox.c.claimed_by.startswith(owner_prefix, autoescape=True))
            .values(claimed_by=None, lease_until=None)
        )
        return int(result.rowcount or 0)


async def counts(engine: AsyncEngine) -> dict[str, int]:
    """Rows per status."""
    async with engine.connect() as connection:
        rows = await connection.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status))
        found = {status: int(count) for status, count in rows}
    return {status: found.get(status, 0) for status in STATUSES}


async def list_rows(engine: AsyncEngine, *, status: str | None = None,
                    limit: int = 100) -> list[dict[str, Any]]:
    """The most recent rows (of ``status``), oldest of them first."""
    query = select(outbox).order_by(outbox.c.id.desc()).limit(limit)
    if status is not None:
        query = query.where(outbox.c.status == status)
    async with engine.connect() as connection:
        rows = [dict(row._mapping) for row in await connection.execute(query)]
    return rows[::-1]


def _id_filter(ids: Iterable[str]) -> Any:
    """Row ids (numbers) or event ids (anything else)."""
    numbers = [int(text) for text in ids if text.isdigit()]
    names = [text for text in ids if not text.isdigit()]
    return or_(outbox.c.id.in_(numbers), outbox.c.event_id.in_(names))


async def retry(engine: AsyncEngine, ids: Sequence[str] = (), *, failed: bool = False,
                now: float | None = None) -> int:
    """Make rows pending again, due now, with their attempts counted from zero:
    the rows named (row or event ids), or every failed one."""
    now = time.time() if now is None else now
    conditions = []
    if ids:
        conditions.append(_id_filter(ids))
    if failed:
        conditions.append(outbox.c.status == "failed")
    if not conditions:
        return 0
    async with engine.begin() as connection:
        result = await connection.execute(
            update(outbox)
            .where(or_(*conditions), outbox.c.status != "pending")
            .values(status="pending", attempts=0, next_attempt_at=now, claimed_by=None,
                    lease_until=None, delivered_at=None)
        )
        return int(result.rowcount or 0)


async def purge(engine: AsyncEngine, *, statuses: Sequence[str] = ("delivered",),
                older_than: float | None = None, now: float | None = None) -> int:
    """Delete rows of ``statuses`` (never pending ones), older than ``older_than``
    seconds when given."""
    now = time.time() if now is None else now
    chosen = [status for status in statuses if status != "pending"]
    if not chosen:
        return 0
    query = delete(outbox).where(outbox.c.status.in_(chosen))
    if older_than is not None:
        query = query.where(outbox.c.created_at < now - older_than)
    async with engine.begin() as connection:
        result = await connection.execute(query)
        return int(result.rowcount or 0)


