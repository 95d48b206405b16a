"""Login failures in the database (``login_failures``), so every node counts the same tries.

The limiter (:mod:`gateway.users.database.limiter`) keeps its counts in memory and, when
a database is there, here too: one row per client network and per login, holding how
many tries ran or failed lately and until when the key is banned.

What each password try costs the database:

* before the check, **one** statement (with its transaction): an upsert that counts the
  try against its network and login and returns both rows.  When one of them is banned
  or already at its limit, the transaction is rolled back (nothing was counted) and the
  try is refused.  Rows are always taken network first, so concurrent tries cannot
  deadlock;
* after it, nothing on the way to the reply: a failure was counted already; a right
  password deletes the two rows, a try never judged gives its count back, and the
  failure that reaches a limit writes the ban, each in the background;
* now and then (``purge_interval``), a delete of the rows older than ``forget_after``
  and not banned, by an index on ``updated_at``.

Times are epoch seconds from the node's clock, as for the session heartbeats: nodes
are expected to agree on the time (NTP) to well within a ban's duration.

When the table cannot be reached the try is decided from memory alone and the outage
is logged once; the table is left alone for ``retry_after`` seconds, then tried again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import case, delete, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.users.database.errors import SchemaMismatch
from gateway.users.database.limiter import SharedCount, SharedKey
from gateway.users.database.models import LoginFailureRow
from gateway.users.database.urls import safe_url

__all__ = ("SharedFailures", "stored_key")

logger = logging.getLogger("gateway.users.limiter")

rows = LoginFailureRow.__table__
columns = rows.c

#: Failures that mean "the table cannot answer now"
_UNAVAILABLE = (SQLAlchemyError, OSError, TimeoutError, SchemaMismatch)

#: Keys longer than this, or not plain printable text, are stored as their digest.
_KEY_CHARS = 128

#: The upserts, per database: both have ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``.
_INSERTS: dict[str, Callable[..., Any]] = {
    "postgresql": postgresql.insert,
    "sqlite": sqlite.insert,
}


def stored_key(key: str) -> str:
    """The key as stored: itself, or ``sha256:<hex>`` for a long or odd one.

    A login is what the client typed: it may be long, hold NUL (which PostgreSQL text
    refuses) or undecodable bytes (lone surrogates); none of that may make the query
    fail, or a guesser could turn the shared count off with a strange name.
    """
    if len(key) <= _KEY_CHARS and key.isprintable():
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            pass
        else:
            return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


class _Refused(Exception):
    """Rolls the reservation back; carries the counts that refused it."""

    def __init__(self, counts: dict[str, SharedCount]) -> None:
        super().__init__("refused")
        self.counts = counts


class SharedFailures:
    """The ``login_failures`` table as the limiter's shared book.

    :param engine: the accounts database (PostgreSQL or SQLite)
    :param forget_after: seconds without a try after which a key's count starts over
        (the limiter's ``forget_after``)
    :param query_timeout: seconds a query may take before the try is decided from memory
    :param retry_after: seconds the table is left alone after it could not be reached
    :param purge_interval: seconds between this node's deletions of expired rows
    :param prepare: awaited before each reservation (the manager's ``connect``, which
        checks the schema once and then returns at once)
    :param clock: epoch seconds (``time.time``; tests pass their own)
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        forget_after: float,
        query_timeout: float = 5.0,
        retry_after: float = 5.0,
        purge_interval: float = 60.0,
        prepare: Callable[[], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        backend = engine.url.get_backend_name()
        insert = _INSERTS.get(backend)
        if insert is None:
            raise ValueError(f"login failures cannot be shared on {backend} (PostgreSQL or SQLite)")
        if forget_after <= 0:
            raise ValueError("forget_after must be > 0")
        self.engine = engine
        self._insert = insert
        self.forget_after = forget_after
        self.query_timeout = query_timeout
        self.retry_after = retry_after
        self.purge_interval = purge_interval
        self._prepare = prepare
        self.clock = clock
        self._down_until = 0.0  # time.monotonic(): no query before
        self._outage = False
        self._last_purge = float("-inf")
        self._tasks: set[asyncio.Task[None]] = set()

    @staticmethod
    def supports(engine: AsyncEngine) -> bool:
        """Whether failures can be shared on this database."""
        return engine.url.get_backend_name() in _INSERTS

    # -- the shared book -------------------------------------------------------------------
    async def reserve(self, keys: Sequence[SharedKey]) -> dict[str, SharedCount] | None:
        """Count one try against every key, all or none; the counts by scope.

        ``None`` when the table cannot be reached (logged once per outage).
        """
        if not keys:
            return {}
        if time.monotonic() < self._down_until:
            return None
        try:
            if self._prepare is not None:
                await self._prepare()
            async with asyncio.timeout(self.query_timeout):
                counts = await self._reserve(keys, self.clock())
        except _UNAVAILABLE as exc:
            self._unavailable(exc, "counting a login try")
            return None
        self._reachable()
        self._purge_now_and_then()
        return counts

    def release(self, keys: Sequence[SharedKey], *, cleared: bool) -> None:
        """In the background: forget the keys' failures (``cleared``, a right password)
        or give one try back (a try never judged)."""
        if keys:
            self._later(lambda: self._release(keys, cleared), "giving a login try back")

    def ban(self, key: SharedKey, duration: float) -> None:
        """In the background: ban (or lock) ``key`` on every node for ``duration`` s."""
        self._later(lambda: self._ban(key, duration), "recording a ban")

    # -- upkeep ------------------------------------------------------------------------------
    async def purge(self) -> int:
        """Delete the rows that no longer mean anything; how many went.

        Rows another transaction holds (a try being counted) are skipped, not waited
        for: the purge never holds one row while waiting for another, so it cannot
        deadlock with a reservation (PostgreSQL; SQLite locks the whole file).
        """
        now = self.clock()
        expired = (
            select(columns.scope, columns.key)
            .where(columns.updated_at < now - self.forget_after, columns.banned_until <= now)
            .with_for_update(skip_locked=True)
        )
        async with self.engine.begin() as connection:
            result = await connection.execute(
                delete(rows).where(tuple_(columns.scope, columns.key).in_(expired))
            )
        return int(result.rowcount or 0)

    async def drain(self) -> None:
        """Wait for the background writes started so far."""
        while pending := [task for task in self._tasks if not task.done()]:
            await asyncio.gather(*pending, return_exceptions=True)

    async def close(self) -> None:
        """Give the background writes ``query_timeout`` seconds to end, then cancel them."""
        tasks = list(self._tasks)
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=self.query_timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    # -- queries -------------------------------------------------------------------------------
    async def _reserve(self, keys: Sequence[SharedKey], now: float) -> dict[str, SharedCount]:
        # network first, as the limiter lists them: every node takes the rows in one order
        values = [
            {"scope": key.scope, "key": stored_key(key.key), "failures": 1,
             "updated_at": now, "banned_until": 0.0}
            for key in keys
        ]
        statement = self._insert(rows).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=[columns.scope, columns.key],
            set_={
                # a count idle for forget_after starts over, as in memory
                "failures": case(
                    (columns.updated_at < now - self.forget_after, 1),
                    else_=columns.failures + 1,
                ),
                "updated_at": now,
            },
        ).returning(columns.scope, columns.failures, columns.banned_until)
        try:
            async with self.engine.begin() as connection:
                result = await connection.execute(statement)
                counts = {
                    row.scope: SharedCount(int(row.failures), max(0.0, row.banned_until - now))
                    for row in result
                }
                if not all(key.admits(counts[key.scope]) for key in keys):
                    raise _Refused(counts)  # rolled back: this try is not counted
        except _Refused as refused:
            return refused.counts
        return counts

    async def _release(self, keys: Sequence[SharedKey], cleared: bool) -> None:
        now = self.clock()
        async with self.engine.begin() as connection:
            for key in keys:  # one row at a time, network first, as reservations take them
                match = (columns.scope == key.scope, columns.key == stored_key(key.key),
                         columns.banned_until <= now)
                statement: Any
                if cleared:
                    statement = delete(rows).where(*match)
                else:
                    statement = (
                        update(rows)
                        .where(*match, columns.failures > 0)
                        .values(failures=columns.failures - 1)
                    )
                await connection.execute(statement)

    async def _ban(self, key: SharedKey, duration: float) -> None:
        now = self.clock()
        until = now + duration
        statement = self._insert(rows).values(
            scope=key.scope, key=stored_key(key.key), failures=0, updated_at=now,
            banned_until=until,
        )
        statement = statement.on_conflict_do_update(
            index_elements=[columns.scope, columns.key],
            set_={
                "failures": 0,  # after the ban, the counting starts over
                "updated_at": now,
                "banned_until": case(
                    (columns.banned_until > until, columns.banned_until), else_=until
                ),
            },
        )
        async with self.engine.begin() as connection:
            await connection.execute(statement)

    # -- background and outages ----------------------------------------------------------------
    def _purge_now_and_then(self) -> None:
        now = self.clock()
        if now - self._last_purge >= self.purge_interval:
            self._last_purge = now
            self._later(self.purge, "purging old login failures")

    def _later(self, operation: Callable[[], Awaitable[Any]], what: str) -> None:
        task = asyncio.get_running_loop().create_task(self._run(operation, what))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, operation: Callable[[], Awaitable[Any]], what: str) -> None:
        try:
            async with asyncio.timeout(self.query_timeout):
                await operation()
        except _UNAVAILABLE as exc:
            self._unavailable(exc, what)
        except Exception:
            logger.exception("login failures: %s failed", what)
        else:
            self._reachable()

    def _unavailable(self, exc: BaseException, what: str) -> None:
        self._down_until = time.monotonic() + self.retry_after
        if not self._outage:
            self._outage = True
            logger.error(
                "login failures in %s unreachable (%s): %s; until it is back, each node "
                "counts failed logins on its own", safe_url(self.engine.url), what,
                str(exc) or type(exc).__name__,
            )

    def _reachable(self) -> None:
        if self._outage:
            self._outage = False
            logger.warning(
                "login failures in %s reachable again: failed logins count across nodes",
                safe_url(self.engine.url),
            )
