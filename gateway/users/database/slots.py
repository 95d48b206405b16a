"""Connection slots counted in the database, so a limit holds across every node.

A session of a user with ``maximum_connections`` takes a row in ``sessions`` when it
logs in and deletes it when it ends.  Each node refreshes the heartbeat of its own
rows; a node that dies stops doing so, and after ``stale_after`` seconds its rows no
longer count and are removed by whichever node cleans up next.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.users.database.models import SessionRow, UserRow

__all__ = ("SessionSlots",)

logger = logging.getLogger("gateway.users.database")

sessions = SessionRow.__table__
users = UserRow.__table__


class SessionSlots:
    """Takes and gives back slots; keeps this node's rows alive while it runs."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        node: str | None = None,
        heartbeat_interval: float = 10.0,
        stale_after: float = 60.0,
    ) -> None:
        if stale_after <= heartbeat_interval:
            raise ValueError("stale_after must be longer than heartbeat_interval")
        self.engine = engine
        self.node = node or uuid.uuid4().hex
        self.heartbeat_interval = heartbeat_interval
        self.stale_after = stale_after
        #: slots whose release failed (database down): retried on every heartbeat
        self._pending_release: set[int] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._heartbeat_loop(), name=f"gateway session heartbeat {self.node}"
            )

    async def acquire(self, account_id: int, limit: int) -> int | None:
        """A new session row for the account, or None when its limit is reached.

        The account row is locked first (PostgreSQL), so concurrent logins of one user
        on any node are counted one after another.  On SQLite the insert comes before
        the count and takes the database's write lock, which serializes them too.
        """
        now = time.time()
        cutoff = now - self.stale_after
        async with self.engine.begin() as connection:
            if connection.dialect.name != "sqlite":
                await connection.execute(
                    select(users.c.id).where(users.c.id == account_id).with_for_update()
                )
            result = await connection.execute(
                insert(sessions)
                .values(user_id=account_id, node=self.node, started_at=now, heartbeat_at=now)
                .returning(sessions.c.id)
            )
            slot = result.scalar_one()
            count = (
                await connection.execute(
                    select(func.count())
                    .select_from(sessions)
                    .where(sessions.c.user_id == account_id, sessions.c.heartbeat_at >= cutoff)
                )
            ).scalar_one()
            if count > limit:
                await connection.rollback()
                return None
        return slot

    async def release(self, slot: int) -> None:
        """Give a slot back now (the caller calls :meth:`retry_later` if this fails)."""
        async with self.engine.begin() as connection:
            await connection.execute(delete(sessions).where(sessions.c.id == slot))

    def retry_later(self, slot: int) -> None:
        """Release ``slot`` with the next heartbeat (the database was unreachable)."""
        self._pending_release.add(slot)

    async def beat(self) -> None:
        """Refresh this node's rows, retry failed releases, drop dead nodes' rows."""
        now = time.time()
        pending = list(self._pending_release)
        async with self.engine.begin() as connection:
            if pending:
                await connection.execute(delete(sessions).where(sessions.c.id.in_(pending)))
            await connection.execute(
                update(sessions).where(sessions.c.node == self.node).values(heartbeat_at=now)
            )
            await connection.execute(
                delete(sessions).where(sessions.c.heartbeat_at < now - self.stale_after)
            )
        self._pending_release.difference_update(pending)

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            try:
                async with asyncio.timeout(max(self.heartbeat_interval, 1.0)):
                    await self.beat()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("session heartbeat failed: %s", exc)

    async def close(self) -> None:
        """Stop the heartbeat and give back every slot this node holds."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None
        try:
            async with asyncio.timeout(5):
                async with self.engine.begin() as connection:
                    await connection.execute(delete(sessions).where(sessions.c.node == self.node))
        except Exception as exc:
            logger.warning("could not release this node's session slots: %s", exc)
