"""Quotas applied to a session: what an account (or a shared folder) may hold and
how much it may move per day and month.

Like the file rules (:mod:`gateway.server.filepolicy`), quotas are enforced by the
session's path I/O, wrapped at login by :func:`guard_quotas`, so the handlers do not
know about them:

* ``open`` for writing hands out :class:`QuotedUpload`.  Opening claims the first
  bytes from the store (the size ALLO announced, else :data:`CLAIM_BYTES`) while the
  file's old size is read.  With ALLO, or an upload quota (every byte received counts
  against it), the answer is awaited at open: what does not fit is refused there,
  before any data flows (552).  Otherwise the first bytes (up to :data:`AHEAD_BYTES`,
  into the upload's temporary) flow while the claim is answered, and a new file past
  ``max_files`` or bytes beyond the grant fail the next write or the commit.  Writes
  past what was claimed claim more; when the quota has no more, the write fails
  (552 "quota exceeded: ..."), and the upload is rolled back: nothing is committed
  that a claim does not cover.  The commit settles, while storage commits: the claim
  is given back and the file's growth (new size minus overwritten size) and a new
  file are counted;
* ``open`` for reading (a RETR) hands out :class:`QuotedDownload` when the account
  has download quotas: a file larger than what is left is refused at open, and the
  bytes read are counted, cut off past what is left;
* ``unlink`` and ``rename`` count what they remove (a deleted file, a file replaced
  by a rename) and what moves between shared folders.

Where usage lives is the store's business (:mod:`gateway.users.quotastore`):
process memory for accounts carrying their limits, the database for database
accounts (:mod:`gateway.users.database.quotastore`).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import errno
import io
import logging
import sys
import weakref
from collections.abc import Awaitable, Callable, Generator, Hashable
from typing import Any

from backends.errors import PathIOError
from gateway.server.session import Session
from gateway.users.quotas import (
    Quota,
    TransferUsage,
    Usage,
    format_size,
    option_name,
    quota_reason,
)
from gateway.users.quotastore import Ledger, MemoryQuotaStore, QuotaStore, scan_usage

__all__ = (
    "CLAIM_BYTES",
    "QuotaContext",
    "QuotedDownload",
    "QuotedUpload",
    "available_reply",
    "guard_quotas",
    "quota_context",
    "quota_report",
    "quota_store",
)

logger = logging.getLogger("gateway.server")

#: Bytes an upload claims at a time against ``max_bytes`` (one store round trip each).
CLAIM_BYTES = 4 << 20
#: Bytes an upload may write to its temporary (never committed before the claim covers
#: them) while its first claim is being answered: the round trip overlaps the transfer.
AHEAD_BYTES = CLAIM_BYTES

_WRITE_MODES = frozenset("wax+")

_stores: weakref.WeakKeyDictionary[Any, QuotaStore] = weakref.WeakKeyDictionary()
_memory_fallback = MemoryQuotaStore()


def quota_store(user_manager: Any, user: Any) -> QuotaStore | None:
    """The store counting ``user``'s usage: the database for a database account, this
    process's memory for an account carrying its limits; None when nothing is counted."""
    engine = getattr(user_manager, "engine", None)
    if engine is not None and getattr(user, "account_id", None) is not None:
        store = _stores.get(user_manager)
        if store is None:
            from gateway.users.database.quotastore import DatabaseQuotaStore

            cache = getattr(user_manager, "cache", None)
            store = DatabaseQuotaStore(
                engine, cache_ttl=float(getattr(cache, "ttl", 5.0)),
                query_timeout=float(getattr(user_manager, "query_timeout", 5.0)),
            )
            _stores[user_manager] = store
        return store
    quota = getattr(user, "quota", None)
    if not isinstance(quota, Quota) or not quota.active:
        return None
    try:
        store = _stores.get(user_manager)
        if store is None:
            store = _stores[user_manager] = MemoryQuotaStore()
    except TypeError:  # a manager that cannot be weakly referenced
        store = _memory_fallback
    return store


class QuotaContext:
    """One session's quota state: its store, its account's key, its storage."""

    def __init__(self, session: Session, path_io: Any, store: QuotaStore, account: Hashable,
                 user: Any) -> None:
        self._session = weakref.ref(session)
        self._path_io = weakref.ref(path_io)
        self.store = store
        self.account = account
        self.user = user
        self._scan_lock = asyncio.Lock() if isinstance(store, MemoryQuotaStore) else None

    @property
    def session(self) -> Session:
        session = self._session()
        if session is None:
            raise RuntimeError("the session this storage belonged to is gone")
        return session

    @property
    def path_io(self) -> Any:
        path_io = self._path_io()
        if path_io is None:
            raise RuntimeError("the session this storage belonged to is gone")
        return path_io

    def folder_of(self, path: Any) -> str | None:
        """The shared folder ``path`` lies in (a path I/O composing several roots says
        so with ``mount_of``), or None for the account's own files."""
        mount_of = getattr(self.path_io, "mount_of", None)
        if mount_of is None:
            return None
        try:
            mount = mount_of(path)
        except (ValueError, KeyError, LookupError):
            return None
        if mount is None:
            return None
        if isinstance(mount, tuple):
            name = mount[0] if mount else None
        else:
            name = getattr(mount, "name", None) or getattr(mount, "folder", None)
        return None if name is None else str(name)

    async def ledger_for(self, path: Any) -> tuple[Ledger, Quota | None]:
        """Where a file at ``path`` counts, and that ledger's limits (None: not counted)."""
        folder = self.folder_of(path)
        if folder is not None:
            return ("folder", folder), await self.store.folder_quota(folder)
        ledger: Ledger = ("account", self.account)
        quota = await self.account_quota()
        if quota is not None and self._scan_lock is not None:
            await self._count_existing(ledger)
        return ledger, quota

    async def account_quota(self) -> Quota | None:
        return await self.store.account_quota(self.account, self.user)

    async def _count_existing(self, ledger: Ledger) -> None:
        """In process memory, an account's files are counted once, at first use."""
        store = self.store
        assert isinstance(store, MemoryQuotaStore) and self._scan_lock is not None
        if store.known(ledger):
            return
        async with self._scan_lock:
            if not store.known(ledger):
                session = self.session
                store.load(ledger, await scan_usage(self.path_io, session.user_root))

    async def size_of(self, path: Any) -> int | None:
        """A file's size; None when there is no file there (missing, or a directory)."""
        try:
            stats = await self.path_io.stat(path)
        except PathIOError as exc:
            if isinstance(exc.cause, (FileNotFoundError, NotADirectoryError)):
                return None
            raise
        mode = getattr(stats, "st_mode", None)
        if mode is not None and (mode & 0o170000) == 0o040000:
            return None
        return int(getattr(stats, "st_size", 0) or 0)


def quota_context(path_io: Any) -> QuotaContext | None:
    """The quota state a path I/O was wrapped with (None: not wrapped)."""
    context = getattr(path_io, "gateway_quotas", None)
    return context if isinstance(context, QuotaContext) else None


def guard_quotas(session: Session, path_io: Any, user: Any, user_manager: Any) -> Any:
    """The session's path I/O with the account's quotas counted and enforced.

    Only this session's object changes (its ``open``, ``unlink``, ``rename``); a path
    I/O shared by several sessions is copied first, unless the file rules already
    made it this session's own.  Installed after :func:`~gateway.server.filepolicy.
    guard_uploads`: what the file rules refuse never claims anything here, while an
    ALLO size is read here first and cleared by whichever opens last.
    """
    store = quota_store(user_manager, user)
    if store is None:
        return path_io
    account = store.account_key(user)
    if account is None:
        return path_io
    if "open" not in vars(path_io) and getattr(path_io, "connection", None) is not session:
        path_io = copy.copy(path_io)
    opener: Callable[..., Any] = path_io.open
    unlinker: Callable[..., Any] = path_io.unlink
    renamer: Callable[..., Any] = path_io.rename
    context = QuotaContext(session, path_io, store, account, user)

    def open(path: Any, mode: str = "rb") -> Any:  # noqa: A001 - the path I/O's own name
        opened = opener(path, mode)
        if _WRITE_MODES & set(mode):
            return QuotedUpload(opened, context=context, path=path, mode=mode)
        return QuotedDownload(opened, context=context, path=path)

    async def unlink(path: Any) -> None:
        ledger, quota = await context.ledger_for(path)
        if quota is None:
            await unlinker(path)
            return
        size = await context.size_of(path)
        await unlinker(path)
        if size is not None:
            await _quietly(context.store.changed(ledger, -size, -1), "a delete")

    async def rename(source: Any, destination: Any) -> None:
        source_ledger, source_quota = await context.ledger_for(source)
        target_ledger, target_quota = await context.ledger_for(destination)
        if source_quota is None and target_quota is None:
            await renamer(source, destination)
            return
        replaced, moved = await asyncio.gather(
            context.size_of(destination),
            context.size_of(source) if source_ledger != target_ledger else _none(),
        )
        await renamer(source, destination)
        store = context.store
        if replaced is not None and target_quota is not None:
            await _quietly(store.changed(target_ledger, -replaced, -1), "a rename")
        if moved is not None:
            if source_quota is not None:
                await _quietly(store.changed(source_ledger, -moved, -1), "a rename")
            if target_quota is not None:
                await _quietly(store.changed(target_ledger, moved, 1), "a rename")

    path_io.open = open
    path_io.unlink = unlink
    path_io.rename = rename
    path_io.gateway_quotas = context
    return path_io


async def _none() -> None:
    return None


async def _quietly(operation: Any, what: str) -> None:
    """Count a change storage already made: a store that fails now is logged (the
    client's command succeeded; ``gateway users quota --rescan`` repairs the count)."""
    try:
        await asyncio.shield(operation)
    except Exception:
        logger.exception("quota usage not updated after %s", what)


def _refusal(reason: str, errno_value: int = errno.EFBIG) -> PathIOError:
    """A failure the storage-error table answers 552 ("exceeded storage allocation")."""
    cause = OSError(errno_value, reason)
    try:
        raise cause
    except OSError:
        return PathIOError(reason, reason=sys.exc_info())


def _unavailable(exc: BaseException) -> PathIOError:
    """The quota store cannot answer: a check that could not be made is not a yes (451)."""
    logger.error("quota store unavailable: %s", exc)
    try:
        raise ConnectionError("quota usage cannot be checked now") from exc
    except ConnectionError:
        return PathIOError("quota usage cannot be checked now", reason=sys.exc_info())


def _limit_reason(quota: Quota, label: str) -> str:
    return quota_reason(label, getattr(quota, label.replace("-", "_")))


class QuotedUpload:
    """A file opened for an upload, counted against the quota of where it lands.

    It behaves as the object it wraps (awaitable, an async context that commits on
    success and rolls back on failure, ``write``/``seek``/``immediate_writer``...).
    """

    def __init__(self, opened: Any, *, context: QuotaContext, path: Any, mode: str) -> None:
        self._opened = opened
        self._context = context
        self._path = path
        self._mode = mode
        self._ready = False
        self._finished = False
        #: nothing to count: every call goes straight to the wrapped file
        self._plain = False
        #: the checks started at open, awaited before the first write or the commit
        self._pending: asyncio.Future[None] | None = None
        self._ledger: Ledger | None = None
        self._quota: Quota | None = None
        self._account_quota: Quota | None = None
        self._old: int | None = None
        self._claimed = 0
        #: the store began this upload (it is told when it ends, whichever way)
        self._begun = False
        #: (growth, new file) counted at the commit, taken back if the commit fails
        self._counted: tuple[int, int] | None = None
        self._room: int | None = None
        self._room_label = ""
        self.written = 0
        #: where the next byte goes
        self.position = 0

    # -- opening --------------------------------------------------------------------------
    def __await__(self) -> Generator[Any, None, QuotedUpload]:
        return self._open().__await__()

    async def __aenter__(self) -> QuotedUpload:
        return await self._open()

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            await self.close()
        else:
            await self.abort()

    async def _open(self) -> QuotedUpload:
        if self._ready:
            return self
        login = self._context.session.login
        try:
            await self._check(login.allocated)
            try:
                await self._opened
            except BaseException:
                await self._settle(committed=False)
                raise
        finally:
            login.allocated = None  # read by the file rules too: cleared once both did
        self._ready = True
        return self

    async def _check(self, announced: int | None) -> None:
        context = self._context
        try:
            ledger, quota = await context.ledger_for(self._path)
            account_quota = await context.account_quota()
        except PathIOError:
            raise
        except Exception as exc:
            raise _unavailable(exc) from exc
        uploads_limited = account_quota is not None and account_quota.limits_uploads
        if quota is None and not uploads_limited:
            self._plain = True
            return
        self._ledger, self._quota, self._account_quota = ledger, quota, account_quota
        claim = 0
        if quota is not None and quota.max_bytes is not None:
            claim = CLAIM_BYTES if announced is None else announced
        # the claim (a database round trip) runs while the first bytes arrive; an
        # announced size is checked now, before any data flows, and so is a transfer
        # quota (every byte received counts against it)
        self._pending = asyncio.ensure_future(self._begin(announced, claim, uploads_limited))
        if announced is not None or uploads_limited:
            await self._checked()

    async def _checked(self) -> None:
        """Wait for the checks started at open (they refuse with 552).  Cancelled
        meanwhile (ABOR), they go on: the rollback waits for them and gives back what
        they claimed."""
        pending = self._pending
        if pending is None:
            return
        try:
            await asyncio.shield(pending)
        finally:
            if pending.done():
                self._pending = None

    async def _begin(self, announced: int | None, claim: int, uploads_limited: bool) -> None:
        context, quota, ledger = self._context, self._quota, self._ledger
        store = context.store
        transfers_of = context.account if uploads_limited else None

        async def begin() -> tuple[Usage | None, TransferUsage | None, int]:
            if quota is None or ledger is None:
                return None, await store.transfers(context.account), 0
            begun = await store.begin(ledger, claim, transfers_of, quota)
            self._begun = True
            return begun

        begun, old = await asyncio.gather(begin(), self._old_size(), return_exceptions=True)
        if isinstance(begun, BaseException):
            if isinstance(old, BaseException) and not isinstance(old, Exception):
                raise old
            raise _unavailable(begun) from begun
        usage, transfers, self._claimed = begun
        if isinstance(old, BaseException):
            await self._settle_now(committed=False)
            raise old
        self._old = old
        if old is not None and "a" in self._mode:
            self.position = old  # an append writes after what is there
        await self._refuse_at_open(announced, usage, transfers)

    async def _old_size(self) -> int | None:
        if self._quota is None:
            return None  # the old size matters only to a counted ledger
        return await self._context.size_of(self._path)

    async def _refuse_at_open(self, announced: int | None, usage: Usage | None,
                              transfers: TransferUsage | None) -> None:
        quota, reason = self._quota, None
        session_id = self._context.session.id
        if quota is not None and usage is not None:
            if (quota.max_bytes is not None and announced is not None
                    and self._growth(announced) > self._claimed):
                reason = _limit_reason(quota, "max-bytes")
            elif quota.max_files is not None and self._old is None and usage.files + 1 > quota.max_files:
                reason = _limit_reason(quota, "max-files")
        if reason is None and transfers is not None and self._account_quota is not None:
            self._room, self._room_label = transfers.upload_room(self._account_quota)
            if self._room is not None and (self._room == 0 or (announced or 0) > self._room):
                reason = _limit_reason(self._account_quota, self._room_label)
        if reason is None:
            return
        logger.info("session %s: upload refused: %s", session_id, reason)
        await self._settle_now(committed=False)
        raise _refusal(reason)

    # -- counting -----------------------------------------------------------------------------
    def _growth(self, end: int) -> int:
        """How much the ledger grows if the file ends with a byte at ``end``."""
        old = self._old or 0
        final = end if "w" in self._mode or "x" in self._mode else max(old, end)
        return final - old

    async def _admit(self, size: int) -> None:
        """Check the next ``size`` bytes against the quotas (claiming more if needed)."""
        if self._room is not None and self.written + size > self._room:
            assert self._account_quota is not None
            raise self._cut(_limit_reason(self._account_quota, self._room_label))
        quota = self._quota
        if quota is None or quota.max_bytes is None:
            return
        growth = self._growth(self.position + size)
        if growth <= self._claimed:
            return
        assert self._ledger is not None
        wanted = max(CLAIM_BYTES, growth - self._claimed)
        try:
            self._claimed += await self._context.store.claim(self._ledger, wanted, quota)
        except Exception as exc:
            raise _unavailable(exc) from exc
        if growth > self._claimed:
            raise self._cut(_limit_reason(quota, "max-bytes"))

    def _cut(self, reason: str) -> PathIOError:
        logger.info("session %s: upload cut off: %s", self._context.session.id, reason)
        return _refusal(reason)

    async def write(self, data: Any) -> None:
        if self._plain:
            await self._opened.write(data)
            return
        size = len(data)
        pending = self._pending
        if pending is not None and (pending.done() or self.written + size > AHEAD_BYTES):
            await self._checked()
        if self._pending is None:
            await self._admit(size)
        # else: written ahead of the answer, to the upload's temporary only; the
        # commit waits for it (and checks everything written meanwhile)
        await self._opened.write(data)
        self.position += size
        self.written += size

    def immediate_writer(self) -> Callable[[Any], None] | None:
        inner: Callable[[Any], None] | None = self._opened.immediate_writer()
        if inner is None or self._plain:
            return inner
        quota = self._quota
        if (self._pending is not None or self._room is not None
                or (quota is not None and quota.max_bytes is not None)):
            return None  # a write may have to wait for a claim: only the awaited write can

        def write_now(data: Any) -> None:
            inner(data)
            self.position += len(data)
            self.written += len(data)

        return write_now

    async def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        result: Any = await self._opened.seek(offset, whence)
        if isinstance(result, int):
            self.position = result
        elif whence == io.SEEK_SET:
            self.position = offset
        return int(self.position)

    # -- ending ---------------------------------------------------------------------------------
    async def close(self) -> None:
        if self._finished:
            return
        self._finished = True
        try:
            await self._checked()  # an empty file is checked too (max-files)
            await self._admit(0)  # and what was written while the claim was answered
        except BaseException:
            try:
                await self._opened.abort()
            finally:
                await self._settle(committed=False)
            raise
        # the counts go to the store while storage commits: the round trip hides
        # behind the commit's own work (a rename, an fsync, an S3 completion)
        counting = asyncio.ensure_future(self._settle(committed=True))
        try:
            await self._opened.close()
        except BaseException:
            await counting
            await self._uncount()  # nothing was stored: what was counted is taken back
            raise
        await counting

    async def _uncount(self) -> None:
        counted, self._counted = self._counted, None
        if counted is not None and self._ledger is not None:
            growth, new_file = counted
            await _quietly(self._context.store.changed(self._ledger, -growth, -new_file),
                           "a failed commit")

    async def abort(self) -> None:
        if self._finished:
            return
        self._finished = True
        try:
            await self._opened.abort()
        finally:
            await self._settle(committed=False)

    async def _settle(self, *, committed: bool) -> None:
        """Give back the claim; count the file's growth (and a new file) when committed."""
        if self._plain:
            return
        pending, self._pending = self._pending, None
        if pending is not None:
            # what it claimed is given back below, whether it refused or not
            with contextlib.suppress(Exception):
                await pending
        await self._settle_now(committed=committed)

    async def _settle_now(self, *, committed: bool) -> None:
        store, ledger = self._context.store, self._ledger
        claimed, self._claimed = self._claimed, 0
        work = []
        if self._begun and ledger is not None:
            self._begun = False
            growth = self._growth(self.position) if committed else 0
            new_file = 1 if committed and self._old is None else 0
            if committed:
                self._counted = (growth, new_file)
            work.append(_quietly(store.settle(ledger, claimed=claimed, delta_bytes=growth,
                                              delta_files=new_file), "an upload"))
        if self._room is not None and self.written:
            written, self.written = self.written, 0
            work.append(_quietly(store.count_transfer(self._context.account, uploaded=written),
                                 "an upload"))
        await asyncio.gather(*work)

    # -- the rest is the opened file's own ------------------------------------------------------
    @property
    def raw_file(self) -> Any:
        return self._opened.raw_file

    def __getattr__(self, name: str) -> Any:
        return getattr(self._opened, name)


class QuotedDownload:
    """A file opened for reading.  Awaited (as RETR opens it) it is a download,
    checked against the account's download quotas; entered as a context (as HASH
    reads a file to checksum it) it is the server's own reading, not counted."""

    def __init__(self, opened: Any, *, context: QuotaContext, path: Any) -> None:
        self._opened = opened
        self._context = context
        self._path = path
        self._room: int | None = None
        self._label = ""
        self._quota: Quota | None = None
        self._finished = False
        self.read_bytes = 0

    def __await__(self) -> Generator[Any, None, Any]:
        return self._open().__await__()

    async def __aenter__(self) -> Any:
        return await self._opened.__aenter__()

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._room is None:
            await self._opened.__aexit__(exc_type, exc, tb)
        elif exc_type is None:
            await self.close()
        else:
            await self.abort()

    async def _open(self) -> Any:
        context = self._context
        try:
            quota = await context.account_quota()
        except Exception as exc:
            raise _unavailable(exc) from exc
        if quota is None or not quota.limits_downloads:
            return await self._opened
        results: tuple[Any, ...] = await asyncio.gather(
            context.store.transfers(context.account), context.size_of(self._path),
            self._opened, return_exceptions=True,
        )
        transfers, size, opened = results
        for result in (opened, size):
            if isinstance(result, BaseException):
                if not isinstance(opened, BaseException):
                    await self._opened.close()
                raise result
        if isinstance(transfers, BaseException):
            await self._opened.close()
            raise _unavailable(transfers) from transfers
        room, label = transfers.download_room(quota)
        if room is None:
            return opened
        if room == 0 or (isinstance(size, int) and size > room):
            await self._opened.close()
            reason = _limit_reason(quota, label)
            logger.info("session %s: download refused: %s", context.session.id, reason)
            raise _refusal(reason)
        self._quota, self._room, self._label = quota, room, label
        return self

    async def read(self, block_size: int = 8192) -> bytes:
        data: bytes = await self._opened.read(block_size)
        if self._room is not None and self.read_bytes + len(data) > self._room:
            assert self._quota is not None
            reason = _limit_reason(self._quota, self._label)
            logger.info("session %s: download cut off: %s", self._context.session.id, reason)
            raise _refusal(reason)
        self.read_bytes += len(data)
        return data

    @property
    def raw_file(self) -> Any:
        return None  # no sendfile: every byte is counted as it is read

    async def close(self) -> None:
        await self._end(self._opened.close)

    async def abort(self) -> None:
        await self._end(self._opened.abort)

    async def _end(self, end: Callable[[], Awaitable[Any]]) -> None:
        """Close or abort the file once; what was read is counted either way."""
        if self._finished:
            return
        self._finished = True
        try:
            await end()
        finally:
            await self._count()

    async def _count(self) -> None:
        read, self.read_bytes = self.read_bytes, 0
        if read:
            await _quietly(self._context.store.count_transfer(self._context.account,
                                                              downloaded=read), "a download")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._opened, name)


# -- SITE QUOTA and AVBL ---------------------------------------------------------------------


async def quota_report(context: QuotaContext | None, login: str) -> list[str]:
    """The lines of SITE QUOTA: the account's usage and limits."""
    if context is None:
        return [f"Quota of {login}:", "no quota", "End"]
    quota = await context.account_quota()
    if quota is None:
        return [f"Quota of {login}:", "no quota", "End"]
    store = context.store
    ledger: Ledger = ("account", context.account)
    if isinstance(store, MemoryQuotaStore):
        await context.ledger_for(context.session.user_root)  # counted at first use
    usage, transfers = await asyncio.gather(store.usage(ledger), store.transfers(context.account))
    lines = [f"Quota of {login}:"]
    lines.append(_line("bytes", usage.bytes + usage.reserved, quota.max_bytes, "max-bytes",
                             size=True))
    lines.append(_line("files", usage.files, quota.max_files, "max-files", size=False))
    for label, used in (
        ("upload-per-day", transfers.uploaded_day), ("upload-per-month", transfers.uploaded_month),
        ("download-per-day", transfers.downloaded_day),
        ("download-per-month", transfers.downloaded_month),
    ):
        limit = getattr(quota, label.replace("-", "_"))
        lines.append(_line(label.replace("-per-", " this ").replace("this day", "today"),
                                 used, limit, label, size=True))
    if usage.reserved:
        lines.append(f"uploads running: {format_size(usage.reserved)} claimed")
    if store.in_memory:
        lines.append("usage counted by this server process")
    lines.append("End")
    return lines


def _line(what: str, used: int, limit: int | None, label: str, *, size: bool) -> str:
    shown = format_size(used) if size else str(used)
    if limit is None:
        return f"{what}: {shown} used, no limit"
    cap = format_size(limit) if size else str(limit)
    left = max(limit - used, 0)
    free = format_size(left) if size else str(left)
    return f"{what}: {shown} used of {cap} ({label}), {free} left"


async def available_reply(context: QuotaContext | None, real: Any) -> tuple[str, str]:
    """AVBL: ``213 <bytes>`` the quota still allows where ``real`` lies; 550 without a
    byte quota there (storage's own free space is not reported)."""
    if context is None:
        return "550", "no quota: available space not known"
    ledger, quota = await context.ledger_for(real)
    if quota is None or quota.max_bytes is None:
        return "550", "no quota: available space not known"
    usage = await context.store.usage(ledger)
    return "213", str(max(quota.max_bytes - usage.bytes - usage.reserved, 0))


def describe_limits(quota: Quota) -> str:
    """``max-bytes=10 MiB, max-files=100`` (for logs and the command line)."""
    parts = []
    for name, value in quota.as_dict().items():
        if value is not None:
            shown = str(value) if name == "max_files" else format_size(value)
            parts.append(f"{option_name(name)}={shown}")
    return ", ".join(parts) or "none"
