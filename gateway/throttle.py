"""Speed limits for data streams.

A ``Throttle`` keeps a running byte count since a start time and tells how long
to wait so the average stays at ``limit`` bytes per second.  The window restarts
every ``reset_rate`` seconds so a long idle period does not bank a burst.
"""

from __future__ import annotations

import asyncio
import time
from typing import NamedTuple

__all__ = ("Throttle", "StreamThrottle")


def _now() -> float:
    return time.perf_counter()


class Throttle:
    """Byte-rate limiter; ``limit=None`` (or 0) means unlimited."""

    def __init__(self, *, limit: int | None = None, reset_rate: float = 10) -> None:
        self._limit = limit
        self.reset_rate = reset_rate
        self._start: float | None = None
        self._sum = 0

    def delay(self) -> float:
        """Seconds to wait before the next chunk may move (0 when none)."""
        if not self._limit or self._start is None:
            return 0.0
        return max(0.0, self._start + self._sum / self._limit - _now())

    async def wait(self) -> None:
        """Sleep until this throttle allows more data."""
        delay = self.delay()
        if delay > 0:
            await asyncio.sleep(delay)

    def append(self, data: bytes | int, start: float) -> None:
        """Account for ``data`` (bytes or a byte count) moved starting at ``start``."""
        if not self._limit:
            return
        size = data if isinstance(data, int) else len(data)
        if self._start is None:
            self._start = start
        elapsed = start - self._start
        if elapsed > self.reset_rate:
            self._sum = max(0, self._sum - round(elapsed * self._limit))
            self._start = start
        self._sum += size

    @property
    def limit(self) -> int | None:
        return self._limit

    @limit.setter
    def limit(self, value: int | None) -> None:
        self._limit = value
        self._start = None
        self._sum = 0

    def clone(self) -> Throttle:
        """A fresh throttle with the same settings and no history."""
        return Throttle(limit=self._limit, reset_rate=self.reset_rate)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(limit={self._limit!r}, reset_rate={self.reset_rate!r})"


class StreamThrottle(NamedTuple):
    """A pair of throttles, one per direction."""

    read: Throttle
    write: Throttle

    def clone(self) -> StreamThrottle:
        return StreamThrottle(read=self.read.clone(), write=self.write.clone())

    @classmethod
    def from_limits(
        cls, read_speed_limit: int | None = None, write_speed_limit: int | None = None
    ) -> StreamThrottle:
        return cls(read=Throttle(limit=read_speed_limit), write=Throttle(limit=write_speed_limit))
