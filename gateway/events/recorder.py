"""The listener that writes events down: one outbox row per matching action.

``completed`` runs before the client's success reply, so an upload the client saw
acknowledged is in the outbox.  When the database cannot be written (down, or slower
than ``write_timeout``), the rows wait in memory, in order, and the delivery worker
writes them once it can; later events of the node queue behind them.  Only a process
that dies while its database is down loses what it held that way.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.events.matching import Selector
from gateway.events.metrics import EventMetrics
from gateway.events.outbox import enqueue
from gateway.events.payload import encode, event_payload
from gateway.server.events import Operation, ServerEvents

__all__ = ("EventRecorder",)

logger = logging.getLogger("gateway.events")


class EventRecorder(ServerEvents):
    def __init__(
        self,
        engine: AsyncEngine,
        routes: Sequence[tuple[str, Selector]],
        *,
        node: str,
        metrics: EventMetrics,
        wake: Callable[[], None] = lambda: None,
        write_timeout: float = 5.0,
    ) -> None:
        self.engine = engine
        self.routes = list(routes)
        self.node = node
        self.metrics = metrics
        self.wake = wake
        self.write_timeout = write_timeout
        #: rows not written yet, oldest first
        self.backlog: deque[dict[str, Any]] = deque()
        self._flushing = asyncio.Lock()

    def rows_for(self, operation: Operation) -> list[dict[str, Any]]:
        """The outbox rows of ``operation``: one per action that takes it."""
        actions = [name for name, selector in self.routes
                   if selector.matches(operation.kind, operation.login, operation.path, operation.target)]
        if not actions:
            return []
        event_id = str(uuid.uuid4())
        body = encode(event_payload(operation, event_id=event_id, node=self.node)).decode()
        return [
            {"event_id": event_id, "action": name, "account": operation.login or "",
             "kind": operation.kind, "path": operation.path, "body": body,
             "created_at": operation.time}
            for name in actions
        ]

    async def completed(self, session: Any, operation: Operation) -> None:
        rows = self.rows_for(operation)
        if not rows:
            return
        if not self.backlog:
            try:
                async with asyncio.timeout(self.write_timeout):
                    await enqueue(self.engine, rows)
            except Exception as exc:
                logger.error("event %s (%s %s) not written to the outbox (%s: %s); held in memory "
                             "until the database answers", rows[0]["event_id"], operation.kind,
                             operation.path, type(exc).__name__, exc)
            else:
                self._queued(rows)
                self.wake()
                return
        self.backlog.extend(rows)
        self.metrics.unrecorded.inc()
        self.wake()

    def _queued(self, rows: Sequence[dict[str, Any]]) -> None:
        for row in rows:
            self.metrics.queued.labels(row["action"]).inc()

    async def flush(self) -> int:
        """Write what waits in memory, in order; the rows written.  A failure goes up
        with the rest still waiting."""
        written = 0
        async with self._flushing:
            while self.backlog:
                batch = [self.backlog[i] for i in range(min(len(self.backlog), 100))]
                try:
                    async with asyncio.timeout(self.write_timeout):
                        await enqueue(self.engine, batch)
                except IntegrityError:
                    # a write that timed out had landed after all: add the rest one by one
                    for row in batch:
                        try:
                            await enqueue(self.engine, [row])
                        except IntegrityError:
                            pass
                for _ in batch:
                    self.backlog.popleft()
                self._queued(batch)
                written += len(batch)
        if written:
            logger.info("%d held event deliveries written to the outbox", written)
        return written
