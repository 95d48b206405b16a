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

The in-memory state is the fast path: it decides before any hashing and without any
query, and refuses on its own what it already knows (a banned network, a locked login,
as many tries running here as the limit).  Alone, it protects one process.

Several nodes on one database share the counts through a :class:`SharedBook` (the
``login_failures`` table, :mod:`gateway.users.database.failures`, which
``DatabaseUserManager`` attaches).  After :meth:`LoginLimiter.begin` admitted a try
from memory, :meth:`Attempt.wait_turn` counts it in the database against its network
and its login in one atomic upsert, taken back (all or nothing) when a limit is
reached or a ban is on.  A try is thus counted *before* its password is checked, on
whichever node, as in memory: tries running on other nodes count like their failures,
and no node needs to guess them.  Across every node, at most ``ban_after`` password
checks per network (``account_lock_after`` per login) can be running or done before
the ban (lock): the bound of one node, whatever the number of nodes.  Where it gives:

* while a node cannot reach the database, it counts alone (and logs it once): then
  up to ``ban_after`` more per such node, ``nodes * ban_after`` at worst;
* a right password clears its network's and login's counts, as on one node, and with
  them the tries of that network still running on other nodes;
* a try cut short (a node dying mid-check) stays counted until ``forget_after``.

The cost is one upsert per password try, before the hash; the failure itself writes
nothing more, and a right password (delete), a try never judged (give back) and a ban
write once more, in the background.  A ban decided on any node is written there and
binds every node: another node learns it at its next try from that network (refused
with 421, then from memory, without a query, until the ban ends).  The log line and
the metric come from the node that decided it, once.  Accounts from a configuration
file (no database) keep the in-memory limiter only: one node, nothing to share.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = (
    "LOCKOUTS",
    "Attempt",
    "AttemptRefused",
    "LimiterSettings",
    "LoginLimiter",
    "LoginLocked",
    "NetworkRefused",
    "SharedBook",
    "SharedCount",
    "SharedKey",
)

logger = logging.getLogger("gateway.users.limiter")

#: Bans of a network ("network") and locks of a login ("login") decided by this process,
#: read by the metrics endpoint at scrape time.  A ban found in the shared book was
#: decided, and counted, by the node that made it.
LOCKOUTS: dict[str, int] = {"network": 0, "login": 0}

#: the reply texts, the same whichever node refuses
NETWORK_TEXT = "too many failed logins; try again later"
LOGIN_TEXT = "too many failed logins for this login; try again later"


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


class NetworkRefused(AttemptRefused):
    """The shared book refused the try for the client's network (from
    :meth:`Attempt.wait_turn`): answered like a refusal of :meth:`LoginLimiter.begin`,
    421 and the end of the session.  The attempt is settled already."""

    def __init__(self, text: str) -> None:
        super().__init__("address", text)


class LoginLocked(AttemptRefused):
    """The shared book refused the try for the login (from :meth:`Attempt.wait_turn`):
    530 with ``str(exc)``, the session goes on.  The attempt is settled already."""

    def __init__(self, text: str) -> None:
        super().__init__("account", text)


@dataclass(frozen=True)
class SharedKey:
    """What a try is counted against in the shared book: ``scope`` "network" or "login"."""

    scope: str
    key: str
    #: tries admitted before refusing (0: counted for the delays, never refused)
    limit: int

    def admits(self, count: SharedCount) -> bool:
        """Whether a try counted to ``count`` may run: no ban, and within the limit."""
        if count.banned_for > 0:
            return False
        return not self.limit or count.failures <= self.limit


@dataclass(frozen=True)
class SharedCount:
    """A key's shared record as a reservation left (or would have left) it."""

    #: tries running or failed, on every node, this one included
    failures: int
    #: seconds its ban or lock has left (0: none)
    banned_for: float


class SharedBook(Protocol):
    """Failure counts kept where every node sees them (the database)."""

    async def reserve(self, keys: Sequence[SharedKey]) -> dict[str, SharedCount] | None:
        """Count one try against every key, all or none, and return the counts by scope.

        Nothing is counted when one key does not admit the try (its count says why).
        ``None``: the book cannot be reached now; the caller decides alone (the book
        logs it).
        """
        ...

    def release(self, keys: Sequence[SharedKey], *, cleared: bool) -> None:
        """In the background: give back a try never judged, or (``cleared``) forget the
        keys' failures after a right password."""
        ...

    def ban(self, key: SharedKey, duration: float) -> None:
        """In the background: ban (or lock) the key on every node for ``duration`` s."""
        ...


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
        #: the try as the shared book counted it (None: not counted there)
        self._shared: dict[str, SharedCount] | None = None
        self._shared_keys: list[SharedKey] = []

    async def wait_turn(self) -> None:
        """Count the try in the shared book, then wait out the delay earned by earlier
        failures of this network and login.

        :raises NetworkRefused: the network is banned, or has ``ban_after`` tries
            running or failed, counting every node's (answer 421, end the session)
        :raises LoginLocked: the same for the login and ``account_lock_after`` (530)
        """
        limiter = self._limiter
        if limiter.shared is not None and self._open:
            await self._reserve(limiter.shared)
        now = limiter.clock()
        due = 0.0
        for book, key in limiter._keys(self.network, self.login):
            record = book.get(key, now)
            if record is not None:
                due = max(due, record.next_allowed)
        if due > now:
            await asyncio.sleep(due - now)

    async def _reserve(self, shared: SharedBook) -> None:
        limiter = self._limiter
        keys = limiter._shared_keys(self.network, self.login)
        counts = await shared.reserve(keys)
        if counts is None:
            return  # the book is out of reach (it says so in the log): memory decides
        for key in keys:
            count = counts[key.scope]
            if not key.admits(count):
                self._settle()
                limiter._learn_ban(key, count)
                if key.scope == "network":
                    raise NetworkRefused(NETWORK_TEXT)
                raise LoginLocked(LOGIN_TEXT)
        self._shared = counts
        self._shared_keys = keys

    def succeeded(self) -> None:
        """Right password: the try is given back and the failures are forgotten."""
        if self._settle():
            self._limiter._success(self.network, self.login)
            if self._shared is not None and self._limiter.shared is not None:
                self._limiter.shared.release(self._shared_keys, cleared=True)

    def failed(self) -> float:
        """Wrong password (or a check that never finished): returns the delay to apply."""
        if self._settle():
            return self._limiter._failure(self.network, self.login, self._shared)
        return 0.0

    def not_counted(self) -> float:
        """Right password, but the login is refused for another reason (the client's
        address is not allowed for the account): not a guess, so nothing is counted,
        and nothing is forgotten either (it is no success).  Returns the delay a failure
        would have earned now, for the reply to wait as long as a wrong password's: the
        timing must not tell a right password from a wrong one."""
        if not self._settle():
            return 0.0
        if self._shared is not None and self._limiter.shared is not None:
            self._limiter.shared.release(self._shared_keys, cleared=False)
        return self._limiter._failure_delay(self.network, self._shared)

    def abandoned(self) -> None:
        """The password was never judged (accounts unreachable, too busy): not counted."""
        if self._settle() and self._shared is not None and self._limiter.shared is not None:
            self._limiter.shared.release(self._shared_keys, cleared=False)

    def _settle(self) -> bool:
        if not self._open:
            return False
        self._open = False
        now = self._limiter.clock()
        for book, key in self._limiter._keys(self.network, self.login):
            record = book.records.get(key)
            if record is not None and record.in_flight > 0:
                record.in_flight -= 1
            book.get(key, now)  # forgets a record left with nothing to remember
        return True


class LoginLimiter:
    """Failure bookkeeping per client network and per login.

    :param clock: monotonic seconds (``time.monotonic``; tests pass their own)
    """

    def __init__(
        self, settings: LimiterSettings | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings or LimiterSettings()
        self.clock = clock
        self._networks = _Book(self.settings)
        self._accounts = _Book(self.settings)
        #: counts shared with other nodes (see :meth:`share`); None: this process alone
        self.shared: SharedBook | None = None
        #: how many times this limiter banned a network / locked a login (for metrics)
        self.network_bans = 0
        self.account_locks = 0

    def share(self, book: SharedBook | None) -> None:
        """Count tries in ``book`` too, so that every node using it sees them."""
        self.shared = book

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

    def _shared_keys(self, network: str, login: str | None) -> list[SharedKey]:
        """The keys of the shared book, network first (every node locks rows in this order)."""
        settings = self.settings
        keys = [SharedKey("network", network, settings.ban_after)]
        if login is not None and settings.account_lock_after:
            keys.append(SharedKey("login", login, settings.account_lock_after))
        return keys

    # -- queries -----------------------------------------------------------------------
    def ban_remaining(self, address: str) -> float:
        """Seconds the address's network stays banned (0 when it may try)."""
        now = self.clock()
        record = self._networks.get(self.network(address), now)
        return 0.0 if record is None else max(0.0, record.banned_until - now)

    def lock_remaining(self, login: str) -> float:
        """Seconds the login's password logins stay locked (0 when they may try)."""
        now = self.clock()
        record = self._accounts.get(login, now)
        return 0.0 if record is None else max(0.0, record.banned_until - now)

    def locked_accounts(self) -> int:
        now = self.clock()
        return sum(1 for r in self._accounts.records.values() if r.banned_until > now)

    # -- tries -------------------------------------------------------------------------
    def begin(self, address: str, login: str | None = None) -> Attempt:
        """Reserve a try for a password check, before any hashing.

        Decides from memory alone; :meth:`Attempt.wait_turn` then asks the shared book.

        :raises AttemptRefused: the network is banned or has ``ban_after`` tries
            running or failed; or the login is locked or has as many tries running
        """
        settings = self.settings
        now = self.clock()
        network = self.network(address)
        record = self._networks.make(network, now)
        if record.banned_until > now or (
            settings.ban_after and record.failures + record.in_flight >= settings.ban_after
        ):
            raise AttemptRefused("address", NETWORK_TEXT)
        account = None
        if login is not None and settings.account_lock_after:
            account = self._accounts.make(login, now)
            if account.banned_until > now or (
                account.failures + account.in_flight >= settings.account_lock_after
            ):
                raise AttemptRefused("account", LOGIN_TEXT)
            account.in_flight += 1
        record.in_flight += 1
        return Attempt(self, network, login)

    def _book(self, scope: str) -> _Book:
        return self._networks if scope == "network" else self._accounts

    def _learn_ban(self, key: SharedKey, count: SharedCount) -> None:
        """A ban found in the shared book holds here too, from memory, until it ends."""
        if count.banned_for <= 0:
            return  # tries running elsewhere: refused this time, not banned
        now = self.clock()
        record = self._book(key.scope).make(key.key, now)
        record.banned_until = max(record.banned_until, now + count.banned_for)
        record.failures = 0

    def _failure(
        self, network: str, login: str | None, shared: dict[str, SharedCount] | None = None
    ) -> float:
        settings = self.settings
        now = self.clock()
        delay = 0.0
        for book, key in self._keys(network, login):
            scope = "network" if book is self._networks else "login"
            record = book.make(key, now)
            count = shared.get(scope) if shared is not None else None
            if count is None:
                record.failures += 1
                failures = record.failures
            else:
                # every node's tries count: the shared number is the one that decides
                failures = count.failures
                if record.banned_until <= now:
                    record.failures = failures
            record.last_failure = now
            step = min(settings.base_delay * settings.factor ** (max(failures, 1) - 1),
                       settings.max_delay)
            record.next_allowed = max(record.next_allowed, now + step)
            if book is self._networks:
                delay = step
                limit, duration = settings.ban_after, settings.ban_duration
            else:
                limit, duration = settings.account_lock_after, settings.account_lock_duration
            if not limit or failures < limit or record.banned_until > now:
                continue
            record.banned_until = now + duration
            record.failures = 0  # after the ban, the delays start over
            if count is not None and self.shared is not None:
                self.shared.ban(SharedKey(scope, key, limit), duration)
            LOCKOUTS[scope] += 1
            where = " on every node" if count is not None else ""
            if book is self._networks:
                self.network_bans += 1
                logger.warning("network %s banned%s for %.0f s after %d failed logins",
                               key, where, duration, limit)
            else:
                self.account_locks += 1
                logger.warning("password logins of %r locked%s for %.0f s after %d failed "
                               "logins", key, where, duration, limit)
        return delay

    def _failure_delay(self, network: str, shared: dict[str, SharedCount] | None) -> float:
        """The delay :meth:`_failure` would answer with for one more failure of
        ``network``, without counting it."""
        settings = self.settings
        count = shared.get("network") if shared is not None else None
        if count is not None:
            failures = count.failures
        else:
            record = self._networks.get(network, self.clock())
            failures = (record.failures if record is not None else 0) + 1
        return min(settings.base_delay * settings.factor ** (max(failures, 1) - 1),
                   settings.max_delay)

    def _success(self, network: str, login: str | None) -> None:
        now = self.clock()
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
        record = self._networks.get(self.network(address), self.clock())
        if record is not None:
            delay = record.next_allowed - self.clock()
            if delay > 0:
                await asyncio.sleep(delay)

    def failure(self, address: str) -> float:
        """Count a failed attempt of the address; returns the delay before answering."""
        return self._failure(self.network(address), None)

    def success(self, address: str) -> None:
        """A correct password clears the address's failures."""
        self._success(self.network(address), None)
