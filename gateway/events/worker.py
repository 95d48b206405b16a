"""The delivery worker: claims due outbox rows, hands them to their actions, records
what happened.

Each round claims at most one row per (action, account), the oldest pending one, so an
account's events reach an action in order while different accounts and actions go
concurrently.  A failed try comes back after the backoff; a row is given up ("failed")
after the attempts or age limit.  The state is all in the database: a restarted node
(or another one) carries on where this one stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.events.actions import Action, Outcome
from gateway.events.backoff import Backoff
from gateway.events.metrics import EventMetrics
from gateway.events.outbox import Claim, claim, counts, mark_delivered, mark_failed_try
from gateway.events.recorder import EventRecorder

__all__ = ("DeliveryWorker",)

logger = logging.getLogger("gateway.events")

#: seconds between counts of the pending rows (for the gauge)
_COUNT_EVERY = 5.0


class DeliveryWorker:
    def __init__(
        self,
        engine: AsyncEngine,
        actions: Mapping[str, Action],
        *,
        owner: str,
        backoff: Backoff,
        metrics: EventMetrics,
        recorder: EventRecorder | None = None,
        poll_interval: float = 1.0,
        lease: float = 60.0,
        concurrency: int = 8,
    ) -> None:
        self.engine = engine
        self.actions = dict(actions)
        self.owner = owner
        self.backoff = backoff
        self.metrics = metrics
        self.recorder = recorder
        self.poll_interval = poll_interval
        longest = max((getattr(a, "timeout", 0.0) for a in self.actions.values()), default=0.0)
        # a lease outlives the longest try, so a slow receiver is not tried twice at once
        self.lease = max(lease, longest + 30.0)
        self.concurrency = concurrency
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._counted = 0.0
        self._complained = 0.0

    def wake(self) -> None:
        """Something was queued: look now rather than at the next poll."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"gateway event delivery {self.owner}")

    async def stop(self, grace: float = 10.0) -> None:
        """Finish the deliveries under way (up to ``grace`` seconds), claim no more,
        write what waits in memory, close the actions."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            done, _ = await asyncio.wait([self._task], timeout=grace)
            if not done:
                logger.warning("event deliveries still running after %.0f s: stopped; their "
                               "leases run out and they are tried again", grace)
                self._task.cancel()
                with contextlib.suppress(BaseException):
                    await self._task
        if self.recorder is not None and self.recorder.backlog:
            try:
                await self.recorder.flush()
            except Exception as exc:
                logger.error("%d event deliveries could not be written to the outbox before "
                             "stopping: %s", len(self.recorder.backlog), exc)
        for action in self.actions.values():
            with contextlib.suppress(Exception):
                await action.close()

    async def run(self) -> None:
        """Keep up to ``concurrency`` deliveries going; claim more as each one ends.

        A row in flight holds its lease, so the next claim skips its group: a slow
        receiver holds up only its own account's events."""
        inflight: set[asyncio.Task[None]] = set()
        try:
            while not self._stopping:
                self._wake.clear()
                free = self.concurrency - len(inflight)
                claims: list[Claim] = []
                if free > 0:
                    try:
                        if self.recorder is not None and self.recorder.backlog:
                            await self.recorder.flush()
                        claims = await claim(self.engine, self.owner, lease=self.lease, limit=free)
                        await self._count()
                    except Exception as exc:
                        self._complain(exc)
                for one in claims:
                    task = asyncio.create_task(self._deliver(one))
                    inflight.add(task)
                    task.add_done_callback(inflight.discard)
                waiter = asyncio.ensure_future(self._wake.wait())
                try:
                    await asyncio.wait([waiter, *inflight], timeout=self.poll_interval,
                                       return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
            if inflight:
                await asyncio.wait(inflight)
        finally:
            for task in inflight:  # cancelled: their leases run out, they are tried again
                task.cancel()

    def _complain(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._complained >= 30.0:
            self._complained = now
            logger.warning("event outbox unavailable (%s: %s); deliveries wait for it",
                           type(exc).__name__, exc)

    async def _count(self) -> None:
        now = time.monotonic()
        if now - self._counted >= _COUNT_EVERY:
            self._counted = now
            self.metrics.pending.set((await counts(self.engine))["pending"])

    async def _deliver(self, row: Claim) -> None:
        action = self.actions.get(row.action)
        if action is None:
            outcome = Outcome(False, f"no action named {row.action!r} in this node's configuration")
        else:
            try:
                outcome = await action.deliver(row.event_id, row.body.encode())
            except Exception as exc:  # an action is not meant to raise; count it as a failed try
                logger.exception("event action %s failed", row.action)
                outcome = Outcome(False, f"{type(exc).__name__}: {exc}")
        now = time.time()
        try:
            if outcome.ok:
                await mark_delivered(self.engine, row.id, now=now)
                self.metrics.delivered.labels(row.action).inc()
                self.metrics.latency.labels(row.action).observe(max(now - row.created_at, 0.0))
                logger.debug("event %s delivered to %s", row.event_id, row.action)
                return
            attempts = row.attempts + 1
            give_up = self.backoff.gives_up(attempts, row.created_at, now)
            delay = self.backoff.delay(attempts, random.random())
            await mark_failed_try(self.engine, row.id, self.owner, error=outcome.detail,
                                  next_attempt_at=now + delay, give_up=give_up)
        except Exception as exc:
            # the lease runs out and the row is tried again: at least once, maybe twice
            self._complain(exc)
            return
        if give_up:
            self.metrics.failed.labels(row.action).inc()
            logger.error("event %s to %s given up after %d tries: %s", row.event_id, row.action,
                         attempts, outcome.detail)
        else:
            self.metrics.retried.labels(row.action).inc()
            logger.warning("event %s to %s: try %d failed (%s); again in %.1f s", row.event_id,
                           row.action, attempts, outcome.detail, delay)
