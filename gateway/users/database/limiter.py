"""Slowing down password guessing: per client address, a growing delay, then a ban.

The server consults the limiter around PASS (and refuses USER while an address is
banned).  State is per process and in memory: it protects one node from a guesser
without a database write per failed attempt, which would turn an attack on the
gateway into an attack on the database.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

__all__ = ("LimiterSettings", "LoginLimiter")


@dataclass(frozen=True)
class LimiterSettings:
    """How hard repeated failures from one address are slowed down.

    The n-th consecutive failure is answered after ``base_delay * factor**(n-1)``
    seconds (at most ``max_delay``); after ``ban_after`` failures the address is
    refused for ``ban_duration`` seconds.  Failures older than ``forget_after``
    seconds no longer count.  ``ban_after=0`` disables the ban.
    """

    base_delay: float = 0.25
    factor: float = 2.0
    max_delay: float = 8.0
    ban_after: int = 10
    ban_duration: float = 600.0
    forget_after: float = 900.0
    max_addresses: int = 100_000

    def __post_init__(self) -> None:
        if self.base_delay < 0 or self.max_delay < 0 or self.factor < 1:
            raise ValueError("delays must be >= 0 and factor >= 1")
        if self.ban_after < 0 or self.ban_duration < 0 or self.forget_after <= 0:
            raise ValueError("ban_after, ban_duration must be >= 0, forget_after > 0")


class _Record:
    __slots__ = ("failures", "last_failure", "next_allowed", "banned_until")

    def __init__(self) -> None:
        self.failures = 0
        self.last_failure = 0.0
        self.next_allowed = 0.0
        self.banned_until = 0.0


class LoginLimiter:
    """Failure bookkeeping per address (an IP address string)."""

    def __init__(self, settings: LimiterSettings | None = None) -> None:
        self.settings = settings or LimiterSettings()
        self._records: dict[str, _Record] = {}

    def _record(self, address: str, now: float) -> _Record | None:
        record = self._records.get(address)
        if record is not None and now - record.last_failure > self.settings.forget_after:
            if record.banned_until <= now:
                del self._records[address]
                return None
        return record

    def ban_remaining(self, address: str) -> float:
        """Seconds the address stays banned (0 when it may try)."""
        now = time.monotonic()
        record = self._record(address, now)
        if record is None:
            return 0.0
        return max(0.0, record.banned_until - now)

    async def wait_turn(self, address: str) -> None:
        """Wait until the address may make its next attempt.

        Several connections from one address share the delay, so opening more
        sessions does not multiply the guessing rate.
        """
        record = self._record(address, time.monotonic())
        if record is None:
            return
        delay = record.next_allowed - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def failure(self, address: str) -> float:
        """Count a failed attempt; returns the delay to apply before answering."""
        settings = self.settings
        now = time.monotonic()
        record = self._record(address, now)
        if record is None:
            if len(self._records) >= settings.max_addresses:
                self._prune(now)
            record = self._records[address] = _Record()
        record.failures += 1
        record.last_failure = now
        delay = min(settings.base_delay * settings.factor ** (record.failures - 1), settings.max_delay)
        record.next_allowed = now + delay
        if settings.ban_after and record.failures >= settings.ban_after:
            record.banned_until = now + settings.ban_duration
            record.failures = 0  # after the ban, the delays start over
        return delay

    def success(self, address: str) -> None:
        """A correct password clears the address's failures."""
        record = self._records.get(address)
        if record is not None and record.banned_until <= time.monotonic():
            del self._records[address]

    def _prune(self, now: float) -> None:
        forget = self.settings.forget_after
        stale = [
            address
            for address, record in self._records.items()
            if now - record.last_failure > forget and record.banned_until <= now
        ]
        for address in stale:
            del self._records[address]
        if len(self._records) >= self.settings.max_addresses:
            # under a wide attack keep the most recent offenders
            ordered = sorted(self._records.items(), key=lambda item: item[1].last_failure)
            for address, _ in ordered[: len(ordered) // 2]:
                del self._records[address]
