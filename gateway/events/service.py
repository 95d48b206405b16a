"""Events in ``gateway serve``: the outbox's database, the recorder, the delivery
worker and the pre-upload hook, built from ``[events]`` and run with the service.

The outbox lives in the accounts database (the ``event_outbox`` table its migrations
create), or in ``[events] database_url``, or, with static users, in an embedded SQLite
file (``var/events.sqlite3`` in the working directory, next to the default
``var/ftp``), whose table is created on first start.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.config.model import EventSettings, Settings
from gateway.events.actions import Action, CommandAction, WebhookAction
from gateway.events.backoff import Backoff
from gateway.events.hook import PreUploadHook
from gateway.events.matching import Selector
from gateway.events.metrics import EventMetrics
from gateway.events.outbox import ensure_table, release_claims
from gateway.events.recorder import EventRecorder
from gateway.events.worker import DeliveryWorker
from gateway.server.events import ServerEvents

__all__ = ("DEFAULT_OUTBOX_URL", "EventService", "build_actions", "node_name", "outbox_url")

logger = logging.getLogger("gateway.events")

#: the embedded outbox where accounts are not in a database
DEFAULT_OUTBOX_URL = "sqlite+aiosqlite:///var/events.sqlite3"


def node_name(settings: EventSettings) -> str:
    return settings.node_name or socket.gethostname() or "gateway"


def outbox_url(settings: Settings) -> str | None:
    """The outbox's own URL; None when it shares the accounts database's engine."""
    if settings.events.database_url:
        return settings.events.database_url
    if settings.users.source == "database":
        return None
    return DEFAULT_OUTBOX_URL


def build_actions(settings: EventSettings) -> dict[str, Action]:
    actions: dict[str, Action] = {}
    for entry in settings.actions:
        if entry.kind == "webhook":
            assert entry.url is not None
            actions[entry.name] = WebhookAction(entry.name, entry.url, secret=entry.secret,
                                                timeout=entry.timeout, headers=dict(entry.headers))
        else:
            actions[entry.name] = CommandAction(entry.name, entry.command, timeout=entry.timeout)
    return actions


class EventService:
    """What ``gateway serve`` starts and stops; ``listeners`` join its event fan-out."""

    def __init__(self, settings: Settings, manager: Any, registry: Any = None) -> None:
        events = settings.events
        self.settings = events
        self.node = node_name(events)
        #: unique per process; the node name first, so a restart finds its own claims
        self.owner = f"{self.node}/{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.metrics = EventMetrics(registry)
        self.listeners: list[ServerEvents] = []
        self._own_engine = False
        self.url: Any = None
        self.engine: AsyncEngine | None = None
        self.recorder: EventRecorder | None = None
        self.worker: DeliveryWorker | None = None
        self.hook: PreUploadHook | None = None
        self._run_as = settings.run_as
        if events.pre_upload.configured:
            hook = events.pre_upload
            self.hook = PreUploadHook(
                node=self.node, url=hook.url, command=hook.command, secret=hook.secret,
                timeout=hook.timeout, fail_open=hook.fail_open, headers=dict(hook.headers),
                refuse_code=hook.refuse_code,
            )
            self.listeners.append(self.hook)
        if not events.actions:
            return
        url = outbox_url(settings)
        self.url = url if url is not None else getattr(manager, "url", None)
        if url is None:
            self.engine = manager.engine
        else:
            from gateway.users.database.engine import create_engine

            self.engine = create_engine(url)
            self._own_engine = True
        routes = [(a.name, Selector(a.events, a.accounts, a.paths)) for a in events.actions]
        backoff = Backoff(base=events.retry_base, cap=max(events.retry_max, events.retry_base),
                          max_attempts=events.max_attempts, max_age=events.max_age)
        self.worker = DeliveryWorker(
            self.engine, build_actions(events), owner=self.owner, backoff=backoff,
            metrics=self.metrics, poll_interval=events.poll_interval, lease=events.lease,
            concurrency=events.concurrency,
        )
        self.recorder = EventRecorder(self.engine, routes, node=self.node, metrics=self.metrics,
                                      wake=self.worker.wake)
        self.worker.recorder = self.recorder
        self.listeners.insert(0, self.recorder)

    async def start(self) -> None:
        """Make the embedded outbox's table, take back this node's old claims, start
        delivering.  A database error goes up (the service does not start)."""
        if self.engine is None or self.worker is None:
            return
        if self._own_engine:  # an outbox of its own: no migrations made its table
            await ensure_table(self.engine)
            self._hand_over_file()
        if self.settings.node_name:
            # a name given to this node alone: what it held before a crash is its own
            # (with the host name, sibling processes on the host may hold claims
            # under it: theirs come back when their lease runs out, never taken)
            released = await release_claims(self.engine, self.node + "/")
            if released:
                logger.info("took back %d event deliveries this node held before it stopped", released)
        self.worker.start()

    def _hand_over_file(self) -> None:
        """An embedded SQLite outbox made before ``run_as`` drops privileges goes to
        the account the service then runs as (it writes the file and its journal)."""
        url = make_url(str(self.url))
        if self._run_as is None or not url.drivername.startswith("sqlite") or not url.database:
            return
        from gateway.service.privileges import account_ids

        ids = account_ids(*self._run_as)
        path = Path(url.database)
        os.chown(path, *ids)
        if str(self.url) == DEFAULT_OUTBOX_URL:  # the folder made for it, too
            os.chown(path.parent, *ids)

    async def stop(self, grace: float = 10.0) -> None:
        if self.worker is not None:
            await self.worker.stop(grace)
        if self.hook is not None:
            await self.hook.close()
        if self._own_engine and self.engine is not None:
            await self.engine.dispose()
