"""Slowing down password guessing: per client network and per login, delays, then a ban.

The server reserves a *try* before it verifies a password and settles it after
(success, or a counted failure).  Tries still running count like failures, so however
many sessions an address opens, at most ``ban_after`` password checks from it can ever
be running or done before the ban.  Addresses are grouped by network (IPv4 /32, IPv6
/64 by default): one IPv6 host owns a whole /64 and could otherwise change its address
per guess.

Many addresses guessing one login are held back per login too: each failure delays the
next try of that login, and after ``account_lock_after`` failures its password logins
are refused for ``account_lock_duration`` seconds, then allowed again (never forever,
so an attacker cannot lock an account out for good).

State is per process and in memory: it protects one node without a database write per
failed attempt, which would turn an attack on the gateway into one on the database.
Sharing it across nodes is not done.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from dataclasses import dataclass

__all__ = ("Attempt", "AttemptRefused", "LimiterSettings", "LoginLimiter")

logger = logging.getLogger("gateway.users.limiter")


@dataclass(frozen=True)
class LimiterSettings:
    """How hard repeated failures are slowed down.

    The n-th consecutive failure is answered after ``base_delay * factor**(n-1)``
    seconds (at most ``max_delay``); after ``ban_after`` failures the address's network
    (``ban_prefix_ipv4`` / ``ban_prefix_ipv6`` bits) is refused for ``ban_duration``
    seconds.  Failures older than ``forget_after`` seconds no longer count.
    ``ban_after=0`` disables the ban; ``account_lock_after=0`` the per-login lock.
    """

    base_delay: float = 0.25
    factor: float = 2.0
    max_delay: float = 8.0
    ban_after: int = 10
    ban_duration: float = 600.0
    forget_after: float = 900.0
    max_addresses: int = 100_000
    ban_prefix_ipv4: int = 32
    ban_prefix_ipv6: int = 64
    account_lock_after: int = 50
    account_lock_duration: float = 300.0

    def __post_init__(self) -> None:
        if self.base_delay < 0 or self.max_delay < 0 or self.factor < 1:
            raise ValueError("delays must be >= 0 and factor >= 1")
        if self.ban_after < 0 or self.ban_duration < 0 or self.forget_after <= 0:
            raise ValueError("ban_after, ban_duration must be >= 0, forget_after > 0")
        if not 0 <= self.ban_prefix_ipv4 <= 32 or not 0 <= self.ban_prefix_ipv6 <= 128:
            raise ValueError("ban_prefix_ipv4 must be 0..32 and ban_prefix_ipv6 0..128")
        if self.account_lock_after < 0 or self.account_lock_duration < 0:
            raise ValueError("account_lock_after and account_lock_duration must be >= 0")


class AttemptRefused(Exception):
    """No try may start: ``scope`` is "address" (answer 421, end the session) or
    "account" (answer 530).  ``str(exc)`` is the reply text."""

    def __init__(self, scope: str, text: str) -> None:
        super().__init__(text)
        self.scope = scope


class _Record:
    __slots__ = ("failures", "last_failure", "next_allowed", "banned_until", "in_flight")

    def __init__(self) -> None:
        self.failures = 0
        self.last_failure = 0.0
        self.next_allowed = 0.0
        self.banned_until = 0.0
        self.in_flight = 0


class _Book:
    """Records keyed by a network or a login, bounded in number."""

    def __init__(self, settings: LimiterSettings) -> None:
        self.settings = settings
        self.records: dict[str, _Record] = {}

    def get(self, key: str, now: float) -> _Record | None:
        record = self.records.get(key)
        if (
            record is not None
            and now - record.last_failure > self.settings.forget_after
            and record.banned_until <= now
            and record.in_flight == 0
        ):
            del self.records[key]
            return None
        return record

    def make(self, key: str, now: float) -> _Record:
        record = self.get(key, now)
        if record is None:
            if len(self.records) >= self.settings.max_addresses:
                self._prune(now)
            record = self.records[key] = _Record()
        return record

    def _prune(self, now: float) -> None:
        forget = self.settings.forget_after
        stale = [
            key for key, r in self.records.items()
            if now - r.last_failure > forget and r.banned_until <= now and r.in_flight == 0
        ]
        for key in stale:
            del self.records[key]
        if len(self.records) >= self.settings.max_addresses:
            # under a wide attack keep the most recent offenders (and every running try)
            ordered = sorted(
                (item for item in self.records.items() if item[1].in_flight == 0),
                key=lambda item: item[1].last_failure,
            )
            for key, _ in ordered[: len(ordered) // 2]:
                del self.records[key]


class Attempt:
    """One reserved password check; settle it exactly once."""

    def __init__(self, limiter: LoginLimiter, network: str, login: str | None) -> None:
        self._limiter = limiter
        self.network = network
        self.login = login
        self._open = True

    async def wait_turn(self) -> None:
        """Wait out the delay earned by earlier failures of this network and login."""
        limiter = self._limiter
        now = time.monotonic()
        due = 0.0
        for book, key in limiter._keys(self.network, self.login):
            record = book.get(key, now)
            if record is not None:
                due = max(due, record.next_allowed)
        if due > now:
            await asyncio.sleep(due - now)

    def succeeded(self) -> None:
        """Right password: the try is given back and the failures are forgotten."""
        if self._settle():
            self._limiter._success(self.network, self.login)

    def failed(self) -> float:
        """Wrong password (or a check that never finished): returns the delay to apply."""
        if self._settle():
            return self._limiter._failure(self.network, self.login)
        return 0.0

    def abandoned(self) -> None:
        """The password was never judged (accounts unreachable, too busy): not counted."""
        self._settle()

    def _settle(self) -> bool:
        if not self._open:
            return False
        self._open = False
        now = time.monotonic()
        for book, key in self._limiter._keys(self.network, self.login):
            record = book.records.get(key)
            if record is not None and record.in_flight > 0:
                record.in_flight -= 1
            book.get(key, now)  # forgets a record left with nothing to remember
        return True


class LoginLimiter:
    """Failure bookkeeping per client network and per login."""

    def __init__(self, settings: LimiterSettings | None = None) -> None:
        self.settings = settings or LimiterSettings()
        self._networks = _Book(self.settings)
        self._accounts = _Book(self.settings)
        #: how many times a login was locked (for metrics)
        self.account_locks = 0

    # -- keys ------------------------------------------------------------------------
    def network(self, address: str) -> str:
        """The key an address is counted under: its /32 (IPv4) or /64 (IPv6) network."""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return address
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        prefix = self.settings.ban_prefix_ipv4 if ip.version == 4 else self.settings.ban_prefix_ipv6
        return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))

    def _keys(self, network: str, login: str | None) -> list[tuple[_Book, str]]:
        keys = [(self._networks, network)]
        if login is not None and self.settings.account_lock_after:
            keys.append((self._accounts, login))
        return keys

    # -- queries -----------------------------------------------------------------------
    def ban_remaining(self, address: str) -> float:
        """Seconds the address's network stays banned (0 when it may try)."""
        now = time.monotonic()
        record = self._networks.get(self.network(address), now)
        return 0.0 if record is None else max(0.0, record.banned_until - now)

    def lock_remaining(self, login: str) -> float:
        """Seconds the login's password logins stay locked (0 when they may try)."""
        now = time.monotonic()
        record = self._accounts.get(login, now)
        return 0.0 if record is None else max(0.0, record.banned_until - now)

    def locked_accounts(self) -> int:
        now = time.monotonic()
        return sum(1 for r in self._accounts.records.values() if r.banned_until > now)

    # -- tries -------------------------------------------------------------------------
    def begin(self, address: str, login: str | None = None) -> Attempt:
        """Reserve a try for a password check, before any hashing.

        :raises AttemptRefused: the network is banned or has ``ban_after`` tries
            running or failed; or the login is locked or has as many tries running
        """
        settings = self.settings
        now = time.monotonic()
        network = self.network(address)
        record = self._networks.make(network, now)
        if record.banned_until > now or (
            settings.ban_after and record.failures + record.in_flight >= settings.ban_after
        ):
            raise AttemptRefused("address", "too many failed logins; try again later")
        account = None
        if login is not None and settings.account_lock_after:
            account = self._accounts.make(login, now)
            if account.banned_until > now or (
                account.failures + account.in_flight >= settings.account_lock_after
            ):
                raise AttemptRefused("account", "too many failed logins for this login; try again later")
            account.in_flight += 1
        record.in_flight += 1
        return Attempt(self, network, login)

    def _failure(self, network: str, login: str | None) -> float:
        settings = self.settings
        now = time.monotonic()
        delay = 0.0
        for book, key in self._keys(network, login):
            record = book.make(key, now)
            record.failures += 1
            record.last_failure = now
            step = min(settings.base_delay * settings.factor ** (record.failures - 1), settings.max_delay)
            record.next_allowed = max(record.next_allowed, now + step)
            if book is self._networks:
                delay = step
                limit, duration = settings.ban_after, settings.ban_duration
            else:
                limit, duration = settings.account_lock_after, settings.account_lock_duration
            if limit and record.failures >= limit:
                record.banned_until = now + duration
                record.failures = 0  # after the ban, the delays start over
                if book is self._networks:
                    logger.warning("network %s banned for %.0f s after %d failed logins",
                                   key, duration, limit)
                else:
                    self.account_locks += 1
                    logger.warning("password logins of %r locked for %.0f s after %d failed "
                                   "logins", key, duration, limit)
        return delay

    def _success(self, network: str, login: str | None) -> None:
        now = time.monotonic()
        for book, key in self._keys(network, login):
            record = book.records.get(key)
            if record is not None and record.banned_until <= now:
                record.failures = 0
                record.next_allowed = 0.0
                book.get(key, now)
                if record.in_flight == 0 and key in book.records:
                    del book.records[key]

    # -- the former one-address interface (kept for callers and tests) -------------------
    async def wait_turn(self, address: str) -> None:
        """Wait until the address may make its next attempt."""
        record = self._networks.get(self.network(address), time.monotonic())
        if record is not None:
            delay = record.next_allowed - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    def failure(self, address: str) -> float:
        """Count a failed attempt of the address; returns the delay before answering."""
        return self._failure(self.network(address), None)

    def success(self, address: str) -> None:
        """A correct password clears the address's failures."""
        self._success(self.network(address), None)
