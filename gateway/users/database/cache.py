"""Accounts cached for a short time, so a login storm is not a query storm.

Entries (including "no such login") live ``ttl`` seconds: an operator's change with
the command line reaches new logins within that time, without a restart.  Concurrent
misses for one login share a single query.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ("TTLCache", "LoadCancelled")

V = TypeVar("V")


class LoadCancelled(Exception):
    """The task loading an entry was cancelled; the others waiting for it get this."""


class TTLCache(Generic[V]):
    """Login -> value (or None), each entry expiring ``ttl`` seconds after its load."""

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        if ttl < 0:
            raise ValueError("ttl must be >= 0")
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, V | None]] = OrderedDict()
        self._loading: dict[str, asyncio.Future[V | None]] = {}

    def peek(self, key: str) -> V | None:
        """The cached value even if expired (to reuse unchanged objects on reload)."""
        entry = self._entries.get(key)
        return None if entry is None else entry[1]

    def invalidate(self, key: str | None = None) -> None:
        if key is None:
            self._entries.clear()
        else:
            self._entries.pop(key, None)

    async def get(self, key: str, load: Callable[[], Awaitable[V | None]]) -> V | None:
        entry = self._entries.get(key)
        now = time.monotonic()
        if entry is not None and entry[0] > now:
            return entry[1]
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            value = await load()
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                # the loading task was cancelled, not the waiters: they get an error
                future.set_exception(LoadCancelled(f"loading {key!r} was cancelled"))
            else:
                future.set_exception(exc)
            future.exception()  # retrieved here: waiters re-raise it, nobody must
            raise
        else:
            future.set_result(value)
            self._store(key, value)
            return value
        finally:
            del self._loading[key]

    def _store(self, key: str, value: V | None) -> None:
        if self.ttl <= 0:
            return
        self._entries[key] = (time.monotonic() + self.ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
