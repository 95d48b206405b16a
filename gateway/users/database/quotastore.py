"""Quota usage in the database, shared by every node.

Each operation is one statement in autocommit mode, so one round trip: a claim is
one ``UPDATE ... RETURNING`` (it claims bytes and reads the usage and, when the
account has transfer limits, this day's and month's transfers in the same
statement), an ended upload one ``UPDATE``.  Counters only move by ``x = x + :delta``
in the database, never by a value read before, so nodes cannot overwrite each
other's counts.

On PostgreSQL a node takes the round trips off an upload's way where it safely can:

* what an upload, a delete or a rename changed is counted in the node at once and
  written right behind (one statement for all the changes of a ledger meanwhile);
  until it is written the upload's claim stays in the database, so the database
  errs on the side of too much, never too little;
* far from the limits (:data:`SPARE_MARGIN` left, :data:`FILES_MARGIN` files) a node
  keeps up to :data:`SPARE_BYTES` of a ledger's quota claimed for its next uploads
  (granted under the limit like any claim, refilled by those writes, given back
  :data:`IDLE_SECONDS` after the ledger's last upload on the node, and when the node
  closes): an upload starts there without a round trip, from a view of the usage
  at most :data:`FRESH_SECONDS` old.  Near a limit every claim is a round trip.

Limits are cached for ``cache_ttl`` seconds per node, like accounts: a change with
``gateway users quota --set`` reaches uploads within that time.  An account with no
``account_quotas`` row is not counted at all and costs an upload no query.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable
from typing import Any

from sqlalchemy import Table, TextClause, event, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.users.database.accounts import DatabaseUser
from gateway.users.database.engine import create_engine
from gateway.users.database.quotamodels import (
    AccountQuotaRow,
    AccountUsageRow,
    FolderQuotaRow,
    FolderUsageRow,
    TransferUsageRow,
)
from gateway.users.quotas import QUOTA_FIELDS, Quota, TransferUsage, Usage, periods
from gateway.users.quotastore import Ledger, QuotaStore, granted_bytes

__all__ = ("DatabaseQuotaStore", "upsert")

logger = logging.getLogger("gateway.users.database")

account_quotas = AccountQuotaRow.__table__
account_usage = AccountUsageRow.__table__
transfer_usage = TransferUsageRow.__table__
folder_quotas = FolderQuotaRow.__table__
folder_usage = FolderUsageRow.__table__

def upsert(engine: AsyncEngine | Any, table: Table) -> Any:
    """``INSERT`` with ``ON CONFLICT`` for the engine's dialect (PostgreSQL, SQLite)."""
    name = engine.dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)
    raise ValueError(f"quotas need PostgreSQL or SQLite, not {name}")


def _counting_engine(engine: AsyncEngine, query_timeout: float,
                     at_close: Callable[[], None]) -> AsyncEngine:
    """The engine the counters are written with: one statement, one round trip (no
    BEGIN/COMMIT around it).

    On PostgreSQL it has a small pool of its own whose sessions commit without
    waiting for the WAL flush (``synchronous_commit = off``): a counter update then
    costs a round trip, not a disk sync.  A PostgreSQL crash (not a client's, not a
    node's) may lose the last fraction of a second of counts, which ``gateway users
    quota --rescan`` repairs; limits are not written here.  Its connections are not
    pinged before use: one found dead is replaced and the statement tried once more.
    The pool closes with the accounts engine, after ``at_close`` wrote what was left.
    """
    if engine.dialect.name != "postgresql":
        return engine.execution_options(isolation_level="AUTOCOMMIT")
    own = create_engine(
        engine.url, query_timeout=query_timeout, isolation_level="AUTOCOMMIT",
        pool_pre_ping=False, pool_size=4, max_overflow=16,
        connect_args={"timeout": query_timeout, "command_timeout": query_timeout,
                      "server_settings": {"synchronous_commit": "off"}},
    )

    def disposed(_engine: Any) -> None:
        at_close()
        own.sync_engine.dispose()

    event.listen(engine.sync_engine, "engine_disposed", disposed)
    return own


#: The ledgers' tables and key columns.
_LEDGERS = {"account": ("account_usage", "user_id"), "folder": ("folder_usage", "folder")}


def _claim_statement(table: str, key: str, transfers: bool) -> TextClause:
    """Claim ``:claim`` bytes and read the usage after it (and the account's transfers
    this day and month), in one statement.  Plain SQL, prepared once per connection:
    an upload pays the round trip, not the building of a statement."""
    returning = "bytes, files, reserved"
    if transfers:
        returning += "".join(
            f", (SELECT {column} FROM transfer_usage WHERE user_id = :account AND period = :{period})"
            for period in ("day", "month") for column in ("uploaded", "downloaded")
        )
    return text(f"UPDATE {table} SET reserved = reserved + :claim, updated_at = :now "
                f"WHERE {key} = :key RETURNING {returning}")


def _settle_statement(table: str, key: str) -> TextClause:
    """Count what changed and give back (or, negative, claim) ``:release`` bytes; the
    usage after it."""
    def moved(column: str, name: str, sign: str) -> str:
        return (f"{column} = CASE WHEN {column} {sign} :{name}1 < 0 THEN 0 "
                f"ELSE {column} {sign} :{name}2 END")

    return text(f"UPDATE {table} SET {moved('bytes', 'bytes', '+')}, {moved('files', 'files', '+')}, "
                f"{moved('reserved', 'release', '-')}, updated_at = :now WHERE {key} = :key "
                f"RETURNING bytes, files, reserved")


#: Far from its limits, a node keeps up to this much of a ledger's quota claimed for
#: its next uploads (refilled as they end), so an upload there claims without a
#: round trip; it goes back when the ledger's uploads on the node stop.
SPARE_BYTES = 16 << 20
#: ... but only while at least this much of the quota is neither used nor claimed.
SPARE_MARGIN = 64 << 20
#: How long a node trusts its view of a ledger (refreshed by each of its statements)
#: to start an upload without a round trip.
FRESH_SECONDS = 1.0
#: ... and only while the ledger is at least this many files below ``max_files``.
FILES_MARGIN = 64
#: How long after a ledger's last upload on this node its spare goes back.
IDLE_SECONDS = 1.0
#: How long a node gathers a ledger's changes before writing them in one statement
#: (a claim that needs the database, SITE QUOTA and AVBL write them at once).
WRITE_DELAY_SECONDS = 0.02
#: A transfer may start from the node's view of the account's transfers (refreshed by
#: its statements) while at least this much of each transfer quota is left.
TRANSFER_MARGIN = 64 << 20


class _Moved:
    """An account's transfers this day and month as this node sees them: as the
    database last answered (with what this node wrote since), and what this node
    counted and has not written yet."""

    def __init__(self) -> None:
        self.read: TransferUsage | None = None
        self.periods = ("", "")
        self.seen = 0.0
        self.up = 0
        self.down = 0
        #: being written now
        self.flying = (0, 0)
        self.writing: asyncio.Future[None] | None = None
        self.timer: asyncio.TimerHandle | None = None

    def view(self) -> TransferUsage:
        read = self.read or TransferUsage()
        up, down = self.up + self.flying[0], self.down + self.flying[1]
        return TransferUsage(read.uploaded_day + up, read.uploaded_month + up,
                             read.downloaded_day + down, read.downloaded_month + down)

    def answered(self, transfers: TransferUsage, when: tuple[str, str]) -> None:
        self.read, self.periods, self.seen = transfers, when, time.monotonic()

    def usable(self, quota: Quota) -> bool:
        """Whether a transfer may start from this view, with no round trip."""
        if self.read is None or self.periods != periods() or time.monotonic() - self.seen > FRESH_SECONDS:
            return False
        view = self.view()
        for limit, used in ((quota.upload_per_day, view.uploaded_day),
                            (quota.upload_per_month, view.uploaded_month),
                            (quota.download_per_day, view.downloaded_day),
                            (quota.download_per_month, view.downloaded_month)):
            if limit is not None and limit - used < TRANSFER_MARGIN:
                return False
        return True

    def wrote(self, up: int, down: int) -> None:
        if self.read is not None:
            read = self.read
            self.read = TransferUsage(read.uploaded_day + up, read.uploaded_month + up,
                                      read.downloaded_day + down, read.downloaded_month + down)


class _Held:
    """One ledger as this node sees it: its usage as the last statement answered (with
    this node's changes since), the spare this node holds, and the changes not written
    yet."""

    def __init__(self, spares: bool) -> None:
        self.spares = spares
        self.quota: Quota | None = None
        self.usage: Usage | None = None
        self.seen = 0.0
        self.spare = 0
        self.active = 0
        #: uploads ran since the spare last went back: worth refilling it
        self.hungry = False
        self.bytes = 0
        self.files = 0
        self.release = 0
        self.writing: asyncio.Future[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.idle: asyncio.TimerHandle | None = None
        #: changes counted here so far, and how many of them are in the database
        self.counted = 0
        self.written = 0
        self.progress = asyncio.Event()

    def saw(self, usage: Usage) -> None:
        """A statement's answer, with what was counted here and not written yet."""
        self.usage = Usage(max(usage.bytes + self.bytes, 0), max(usage.files + self.files, 0),
                           max(usage.reserved - self.release, 0))
        self.seen = time.monotonic()

    def _far(self) -> bool:
        quota, usage = self.quota, self.usage
        if not self.spares or quota is None or quota.max_bytes is None or usage is None:
            return False
        return quota.max_bytes - usage.bytes - usage.reserved >= SPARE_MARGIN

    def usable(self, claim: int, quota: Quota) -> bool:
        """Whether an upload may take ``claim`` bytes from the spare, with no round trip."""
        usage = self.usage
        if not self.spares or usage is None or time.monotonic() - self.seen > FRESH_SECONDS:
            return False
        if quota.max_files is not None and usage.files + FILES_MARGIN > quota.max_files:
            return False
        if quota.max_bytes is None:
            return claim == 0
        return self.spare >= claim and self._far()

    def keepable(self, unused: int) -> int:
        """How much of an ended upload's unused claim the spare keeps."""
        if not self._far():
            return 0
        return max(0, min(unused, SPARE_BYTES - self.spare))

    def wants_more(self) -> int:
        """Bytes to claim for the spare with the next write (0: none)."""
        if not self.hungry or self.spare >= SPARE_BYTES // 2 or not self._far():
            return 0
        return SPARE_BYTES - self.spare


_CLAIM = {
    kind: _claim_statement(table, key, transfers)
    for name, (table, key) in _LEDGERS.items()
    for kind, transfers in ((name, False), (f"{name}+transfers", True))
}
_SETTLE = {name: _settle_statement(table, key) for name, (table, key) in _LEDGERS.items()}
#: Bytes moved, added to the day's and the month's rows (PostgreSQL and SQLite
#: both take this upsert).
_COUNT_TRANSFERS = text(
    "INSERT INTO transfer_usage (user_id, period, uploaded, downloaded) "
    "VALUES (:account, :day, :up1, :down1), (:account, :month, :up2, :down2) "
    "ON CONFLICT (user_id, period) DO UPDATE SET "
    "uploaded = transfer_usage.uploaded + excluded.uploaded, "
    "downloaded = transfer_usage.downloaded + excluded.downloaded"
)


class DatabaseQuotaStore(QuotaStore):
    """Limits and usage of database accounts and shared folders."""

    def __init__(self, engine: AsyncEngine, *, cache_ttl: float = 5.0,
                 query_timeout: float = 5.0) -> None:
        self.engine = engine
        self.cache_ttl = cache_ttl
        self.query_timeout = query_timeout
        #: PostgreSQL: changes are written behind the reply (a round trip later) and
        #: spares are kept; SQLite (one process, no round trip) writes at once
        self.write_behind = engine.dialect.name == "postgresql"
        self._auto = _counting_engine(engine, query_timeout, self._final_write)
        self._limits: dict[tuple[str, Hashable], tuple[float, Quota | None]] = {}
        self._held: dict[Ledger, _Held] = {}
        self._moved: dict[Hashable, _Moved] = {}

    def account_key(self, user: Any) -> Hashable | None:
        if isinstance(user, DatabaseUser):
            return user.account_id
        return None

    # -- limits (cached) ---------------------------------------------------------------
    async def account_quota(self, key: Hashable, user: Any) -> Quota | None:
        return await self._cached(("account", key), self._load_account_quota)

    async def folder_quota(self, folder: str) -> Quota | None:
        return await self._cached(("folder", folder), self._load_folder_quota)

    async def _cached(self, ledger: Ledger, load: Any) -> Quota | None:
        entry = self._limits.get(ledger)
        now = time.monotonic()
        if entry is not None and entry[0] > now:
            return entry[1]
        quota: Quota | None = await load(ledger[1])
        self._limits[ledger] = (now + self.cache_ttl, quota)
        return quota

    async def _load_account_quota(self, key: Hashable) -> Quota | None:
        columns = [account_quotas.c[name] for name in QUOTA_FIELDS]
        row = await self._first(select(*columns).where(account_quotas.c.user_id == key))
        if row is None:
            return None
        return Quota(**{name: row[i] for i, name in enumerate(QUOTA_FIELDS)})

    async def _load_folder_quota(self, folder: Hashable) -> Quota | None:
        row = await self._first(select(folder_quotas.c.max_bytes, folder_quotas.c.max_files)
                                .where(folder_quotas.c.folder == folder))
        if row is None:
            return None
        return Quota(max_bytes=row[0], max_files=row[1])

    def forget(self) -> None:
        """Drop the cached limits (tests, and after a change made in this process)."""
        self._limits.clear()

    # -- usage -------------------------------------------------------------------------
    @staticmethod
    def _table(ledger: Ledger) -> tuple[Table, Any]:
        if ledger[0] == "folder":
            return folder_usage, folder_usage.c.folder
        return account_usage, account_usage.c.user_id

    async def begin(self, ledger: Ledger, claim: int, transfers_of: Hashable | None,
                    quota: Quota) -> tuple[Usage, TransferUsage | None, int]:
        held = self._held_for(ledger, quota)
        held.active += 1
        held.hungry = True
        if held.idle is not None:
            held.idle.cancel()
            held.idle = None
        moved = None if transfers_of is None else self._moved_for(transfers_of)
        if held.usable(claim, quota) and (moved is None or (
                self.write_behind and ledger == ("account", transfers_of) and moved.usable(quota))):
            # far from the limits, with enough of the quota already claimed by this
            # node: no round trip (the spare was granted under the limit)
            held.spare -= claim
            assert held.usage is not None
            usage = Usage(held.usage.bytes, held.usage.files, held.usage.reserved)
            return usage, None if moved is None else moved.view(), claim
        try:
            # what this node counted is written first: an upload that just ended
            # has given its claim back, and its file is counted
            await self.flushed(ledger)
            usage, transfers = await self._claim_now(ledger, claim, transfers_of)
        except BaseException:
            held.active -= 1
            raise
        granted = granted_bytes(quota, usage, claim)
        held.saw(usage)
        if granted < claim:
            self._later(ledger, held, release=claim - granted)
        return usage, None if moved is None else moved.view(), granted

    async def claim(self, ledger: Ledger, claim: int, quota: Quota) -> int:
        held = self._held_for(ledger, quota)
        if held.usable(claim, quota):
            held.spare -= claim
            return claim
        await self.flushed(ledger)
        usage, _ = await self._claim_now(ledger, claim, None)
        held.saw(usage)
        granted = granted_bytes(quota, usage, claim)
        if granted < claim:
            self._later(ledger, held, release=claim - granted)
        return granted

    async def _claim_now(self, ledger: Ledger, claim: int, transfers_of: Hashable | None
                         ) -> tuple[Usage, TransferUsage | None]:
        if transfers_of is not None:
            await self._moved_written(transfers_of)
        kind = ledger[0] if transfers_of is None else f"{ledger[0]}+transfers"
        values: dict[str, Any] = {"claim": claim, "now": time.time(), "key": ledger[1]}
        if transfers_of is not None:
            values["account"] = transfers_of
            values["day"], values["month"] = periods()
        row = await self._first(_CLAIM[kind], values)
        if row is None:
            await self._create_usage(ledger)
            row = await self._first(_CLAIM[kind], values)
            assert row is not None
        usage = Usage(int(row[0]), int(row[1]), int(row[2]))
        if transfers_of is None:
            return usage, None
        up_day, down_day, up_month, down_month = (int(value or 0) for value in row[3:7])
        transfers = TransferUsage(up_day, up_month, down_day, down_month)
        self._moved_for(transfers_of).answered(transfers, (values["day"], values["month"]))
        return usage, transfers

    async def settle(self, ledger: Ledger, *, claimed: int, delta_bytes: int,
                     delta_files: int) -> None:
        held = self._held.get(ledger) or self._held_for(ledger, None)
        held.active = max(held.active - 1, 0)
        # what the claim did not cover may stay claimed for this node's next uploads
        keep = held.keepable(claimed - max(delta_bytes, 0))
        held.spare += keep
        self._later(ledger, held, bytes_=delta_bytes, files=delta_files, release=claimed - keep)
        if held.active == 0 and held.spare:
            held.idle = asyncio.get_running_loop().call_later(IDLE_SECONDS, self._idle, ledger)
        if not self.write_behind:
            await self.flushed(ledger)

    async def changed(self, ledger: Ledger, delta_bytes: int, delta_files: int) -> None:
        held = self._held.get(ledger) or self._held_for(ledger, None)
        self._later(ledger, held, bytes_=delta_bytes, files=delta_files)
        if not self.write_behind:
            await self.flushed(ledger)

    # -- what this node holds, and writes behind -------------------------------------------------
    def _held_for(self, ledger: Ledger, quota: Quota | None) -> _Held:
        held = self._held.get(ledger)
        if held is None:
            held = self._held[ledger] = _Held(spares=self.write_behind)
        if quota is not None:
            held.quota = quota
        return held

    def _later(self, ledger: Ledger, held: _Held, *, bytes_: int = 0, files: int = 0,
               release: int = 0) -> None:
        """Count a change now and write it with the next statement for the ledger."""
        held.bytes += bytes_
        held.files += files
        held.release += release
        held.counted += 1
        if held.usage is not None:
            held.usage.bytes = max(held.usage.bytes + bytes_, 0)
            held.usage.files = max(held.usage.files + files, 0)
            held.usage.reserved = max(held.usage.reserved - release, 0)
        if held.writing is None or held.writing.done():
            if not self.write_behind:
                self._start_write(ledger)
            elif held.timer is None:
                # the changes of the next moments go with the same statement
                held.timer = asyncio.get_running_loop().call_later(
                    WRITE_DELAY_SECONDS, self._start_write, ledger)

    def _start_write(self, ledger: Ledger) -> None:
        held = self._held.get(ledger)
        if held is None:
            return
        if held.timer is not None:
            held.timer.cancel()
            held.timer = None
        if held.writing is None or held.writing.done():
            held.writing = asyncio.ensure_future(self._write(ledger, held))

    def _idle(self, ledger: Ledger) -> None:
        """No upload of the ledger ran on this node for a while: its spare goes back."""
        held = self._held.get(ledger)
        if held is None or held.active or not held.spare:
            return
        held.idle = None
        held.hungry = False
        spare, held.spare = held.spare, 0
        self._later(ledger, held, release=spare)

    async def _write(self, ledger: Ledger, held: _Held) -> None:
        """Write what was counted for the ledger, in as few statements as it takes;
        top up this node's spare while far from the limit."""
        try:
            await self._write_all(ledger, held)
        finally:
            held.progress.set()  # whoever waits looks again (done, or failed for now)
            held.progress = asyncio.Event()

    async def _write_all(self, ledger: Ledger, held: _Held) -> None:
        while held.bytes or held.files or held.release or held.wants_more():
            bytes_, files, release = held.bytes, held.files, held.release
            counted = held.counted
            more = held.wants_more()
            held.bytes = held.files = held.release = 0
            try:
                row = await self._first(_SETTLE[ledger[0]], {
                    "bytes1": bytes_, "bytes2": bytes_, "files1": files, "files2": files,
                    "release1": release - more, "release2": release - more,
                    "now": time.time(), "key": ledger[1],
                })
            except Exception as exc:
                # kept for the next write (a later change, or the next idle moment)
                held.bytes += bytes_
                held.files += files
                held.release += release
                logger.warning("quota usage of %s %s not written yet: %s", *ledger, exc)
                asyncio.get_running_loop().call_later(IDLE_SECONDS, self._start_write, ledger)
                return
            if row is None:
                await self._create_usage(ledger)
                held.bytes += bytes_
                held.files += files
                held.release += release
                continue
            usage = Usage(int(row[0]), int(row[1]), int(row[2]))
            if more:
                granted = granted_bytes(held.quota, usage, more)
                held.spare += granted
                held.release += more - granted
            held.saw(usage)
            held.written = counted
            held.progress.set()
            held.progress = asyncio.Event()
        held.written = held.counted  # nothing (more) to write: all of it is there

    async def flushed(self, ledger: Ledger) -> None:
        """Wait until what this node counted for the ledger is in the database."""
        held = self._held.get(ledger)
        if held is None:
            return
        target = held.counted
        if held.timer is not None:
            self._start_write(ledger)  # now, not with the next moments' changes
        # (a write that failed is retried later: then this does not wait for it)
        while held.written < target and held.writing is not None and not held.writing.done():
            await held.progress.wait()

    def _final_write(self) -> None:
        """The accounts engine closes: write what is counted, and give back the spares
        (a node that stops cleanly leaves no claim behind)."""
        for ledger, held in self._held.items():
            for timer in (held.idle, held.timer):
                if timer is not None:
                    timer.cancel()
            release = held.release + held.spare
            if not (held.bytes or held.files or release):
                continue
            try:
                with self._auto.sync_engine.connect() as connection:
                    connection.execute(_SETTLE[ledger[0]], {
                        "bytes1": held.bytes, "bytes2": held.bytes, "files1": held.files,
                        "files2": held.files, "release1": release, "release2": release,
                        "now": time.time(), "key": ledger[1],
                    })
            except Exception as exc:
                logger.warning("quota usage of %s %s not written at close: %s", *ledger, exc)
        self._held.clear()
        for account, moved in self._moved.items():
            if moved.timer is not None:
                moved.timer.cancel()
            if not (moved.up or moved.down):
                continue
            try:
                with self._auto.sync_engine.connect() as connection:
                    connection.execute(_COUNT_TRANSFERS,
                                       self._transfer_values(account, moved.up, moved.down))
            except Exception as exc:
                logger.warning("transfer usage of account %s not written at close: %s", account, exc)
        self._moved.clear()

    async def _create_usage(self, ledger: Ledger) -> None:
        table, key = self._table(ledger)
        statement = upsert(self.engine, table).values(
            {key.name: ledger[1], "bytes": 0, "files": 0, "reserved": 0, "updated_at": time.time()}
        ).on_conflict_do_nothing(index_elements=[key.name])
        await self._execute(statement)

    async def usage(self, ledger: Ledger) -> Usage:
        """The ledger in the database, with this node's counts written first; what this
        node keeps claimed for its next uploads is not counted as held."""
        await self.flushed(ledger)
        table, key = self._table(ledger)
        row = await self._first(select(table.c.bytes, table.c.files, table.c.reserved)
                                .where(key == ledger[1]))
        if row is None:
            return Usage()
        held = self._held.get(ledger)
        spare = 0 if held is None else held.spare
        return Usage(int(row[0]), int(row[1]), max(int(row[2]) - spare, 0))

    # -- transfers -------------------------------------------------------------------------
    def _moved_for(self, account: Hashable) -> _Moved:
        moved = self._moved.get(account)
        if moved is None:
            moved = self._moved[account] = _Moved()
        return moved

    async def transfers(self, account: Hashable) -> TransferUsage:
        moved = self._moved_for(account)
        if self.write_behind and moved.read is not None and moved.periods == periods() \
                and time.monotonic() - moved.seen <= FRESH_SECONDS:
            return moved.view()
        await self._moved_written(account)
        day, month = periods()
        rows = await self._all(
            select(transfer_usage.c.period, transfer_usage.c.uploaded, transfer_usage.c.downloaded)
            .where(transfer_usage.c.user_id == account, transfer_usage.c.period.in_((day, month)))
        )
        found = {row[0]: (int(row[1]), int(row[2])) for row in rows}
        up_day, down_day = found.get(day, (0, 0))
        up_month, down_month = found.get(month, (0, 0))
        moved.answered(TransferUsage(up_day, up_month, down_day, down_month), (day, month))
        return moved.view()

    async def count_transfer(self, account: Hashable, *, uploaded: int = 0,
                             downloaded: int = 0) -> None:
        """Counted in the node at once, written behind (at once on SQLite)."""
        if not uploaded and not downloaded:
            return
        moved = self._moved_for(account)
        moved.up += uploaded
        moved.down += downloaded
        if not self.write_behind:
            self._start_moved(account)
            assert moved.writing is not None
            await asyncio.shield(moved.writing)
        elif (moved.writing is None or moved.writing.done()) and moved.timer is None:
            moved.timer = asyncio.get_running_loop().call_later(
                WRITE_DELAY_SECONDS, self._start_moved, account)

    @staticmethod
    def _transfer_values(account: Hashable, up: int, down: int) -> dict[str, Any]:
        day, month = periods()
        return {"account": account, "day": day, "month": month, "up1": up, "up2": up,
                "down1": down, "down2": down}

    async def _write_moved(self, account: Hashable, moved: _Moved) -> None:
        while moved.up or moved.down:
            up, down = moved.up, moved.down
            moved.up = moved.down = 0
            moved.flying = (up, down)
            try:
                await self._execute(_COUNT_TRANSFERS, self._transfer_values(account, up, down))
            except Exception as exc:
                moved.flying = (0, 0)
                moved.up += up
                moved.down += down
                logger.warning("transfer usage of account %s not written yet: %s", account, exc)
                asyncio.get_running_loop().call_later(IDLE_SECONDS, self._start_moved, account)
                return
            moved.flying = (0, 0)
            moved.wrote(up, down)

    async def _moved_written(self, account: Hashable) -> None:
        """Wait for a write of the account's transfers in flight: a read meanwhile
        would miss what it carries (what is still to write is added to reads)."""
        moved = self._moved.get(account)
        if moved is not None and moved.timer is not None:
            self._start_moved(account)
        if moved is not None and moved.writing is not None and not moved.writing.done():
            await asyncio.shield(moved.writing)

    def _start_moved(self, account: Hashable) -> None:
        moved = self._moved.get(account)
        if moved is None:
            return
        if moved.timer is not None:
            moved.timer.cancel()
            moved.timer = None
        if moved.writing is None or moved.writing.done():
            moved.writing = asyncio.ensure_future(self._write_moved(account, moved))

    # -- running statements ----------------------------------------------------------------
    async def _run(self, statement: Any, collect: Any, values: dict[str, Any] | None = None) -> Any:
        async with asyncio.timeout(self.query_timeout):
            for attempt in (1, 2):
                try:
                    async with self._auto.connect() as connection:
                        return collect(await connection.execute(statement, values))
                except DBAPIError as exc:
                    # a pooled connection the database closed (a restart): replaced,
                    # and the statement (not run there) tried once more
                    if attempt == 2 or not exc.connection_invalidated:
                        raise
        raise AssertionError("unreachable")

    async def _execute(self, statement: Any, values: dict[str, Any] | None = None) -> None:
        await self._run(statement, lambda result: None, values)

    async def _first(self, statement: Any, values: dict[str, Any] | None = None) -> Any:
        return await self._run(statement, lambda result: result.first(), values)

    async def _all(self, statement: Any) -> list[Any]:
        return list(await self._run(statement, lambda result: result.all()))
