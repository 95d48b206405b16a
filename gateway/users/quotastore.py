"""Where quota usage is kept: the interface the server counts through, the store in
process memory (static accounts, the library's ``User``), and the storage walk that
counts what a root holds.

Usage is kept per *ledger*: ``("account", key)`` for an account's own files,
``("folder", name)`` for a shared folder's.  Transfer usage (bytes moved per day and
month) is always the account's.

A claim is how concurrent uploads share what is left under ``max_bytes``: an upload
adds the bytes it is about to write to the ledger's ``reserved`` and learns, in the
same atomic step, how much was held before it; only what fits under the limit is
granted to it.  Every grant is exact (grants never add up past the limit), so a
store whose claims are atomic (process memory; the database's single ``UPDATE``)
keeps ``bytes + reserved`` at or under ``max_bytes`` whatever the concurrency.
"""

from __future__ import annotations

import abc
import logging
import stat as stat_module
import time
from collections.abc import Hashable
from typing import Any

from gateway.users.quotas import Quota, TransferUsage, Usage, periods

__all__ = ("Ledger", "MemoryQuotaStore", "QuotaStore", "granted_bytes", "scan_usage")

logger = logging.getLogger("gateway.users")

#: ("account", key) or ("folder", name)
Ledger = tuple[str, Hashable]


def granted_bytes(quota: Quota | None, usage_after: Usage, claimed: int) -> int:
    """The part of a claim of ``claimed`` bytes that fits under ``max_bytes``, from
    the usage the claim returned (its own claim included in ``reserved``)."""
    if quota is None or quota.max_bytes is None:
        return claimed
    before = usage_after.bytes + usage_after.reserved - claimed
    return max(0, min(claimed, quota.max_bytes - before))


class QuotaStore(abc.ABC):
    """Limits and usage, for the server's quota checks.  Every method may raise when
    the store cannot answer; the server then refuses the upload (451)."""

    #: usage lives in this process only (said in SITE QUOTA)
    in_memory = False

    @abc.abstractmethod
    def account_key(self, user: Any) -> Hashable | None:
        """The account's key in this store; None when it has none (nothing counted)."""

    @abc.abstractmethod
    async def account_quota(self, key: Hashable, user: Any) -> Quota | None:
        """The account's limits; None when its usage is not counted at all."""

    async def folder_quota(self, folder: str) -> Quota | None:
        """A shared folder's limits; None when it has none."""
        return None

    @abc.abstractmethod
    async def begin(self, ledger: Ledger, claim: int, transfers_of: Hashable | None,
                    quota: Quota) -> tuple[Usage, TransferUsage | None, int]:
        """An upload starts: claim ``claim`` bytes (0: none) under ``quota``; the usage
        (with the claim), the account's transfers when ``transfers_of`` is given, and
        the bytes granted (what was not granted is given back by the store)."""

    @abc.abstractmethod
    async def claim(self, ledger: Ledger, claim: int, quota: Quota) -> int:
        """Claim more bytes for a running upload; the bytes granted."""

    @abc.abstractmethod
    async def settle(self, ledger: Ledger, *, claimed: int, delta_bytes: int,
                     delta_files: int) -> None:
        """An upload that ``begin`` started ended: give back its claim and count what
        it changed (nothing, when it was not committed)."""

    @abc.abstractmethod
    async def changed(self, ledger: Ledger, delta_bytes: int, delta_files: int) -> None:
        """Files went away or moved (DELE, RNTO over a file, across folders)."""

    @abc.abstractmethod
    async def transfers(self, account: Hashable) -> TransferUsage:
        """Bytes the account moved this day and this month."""

    @abc.abstractmethod
    async def count_transfer(self, account: Hashable, *, uploaded: int = 0,
                             downloaded: int = 0) -> None:
        """Add to this day's and this month's transfer usage."""

    @abc.abstractmethod
    async def usage(self, ledger: Ledger) -> Usage:
        """What the ledger holds now."""


class MemoryQuotaStore(QuotaStore):
    """Usage in this process's memory, for accounts that carry their limits
    (``User(max_bytes=...)``, ``[[users.static]]``).  An account's files are counted
    by walking its root when it is first needed after the process starts; from then
    on every upload, delete and rename counts here.  Another process serving the same
    storage keeps its own count."""

    in_memory = True

    def __init__(self) -> None:
        self._usage: dict[Ledger, Usage] = {}
        self._transfers: dict[tuple[Hashable, str], list[int]] = {}

    def account_key(self, user: Any) -> Hashable | None:
        quota = getattr(user, "quota", None)
        if not isinstance(quota, Quota) or not quota.active:
            return None
        return getattr(user, "login", None)

    async def account_quota(self, key: Hashable, user: Any) -> Quota | None:
        quota = getattr(user, "quota", None)
        return quota if isinstance(quota, Quota) and quota.active else None

    def known(self, ledger: Ledger) -> bool:
        return ledger in self._usage

    def load(self, ledger: Ledger, usage: Usage) -> None:
        """The count a walk of the storage found (kept claims stay)."""
        current = self._usage.setdefault(ledger, Usage())
        current.bytes, current.files = usage.bytes, usage.files

    def _row(self, ledger: Ledger) -> Usage:
        return self._usage.setdefault(ledger, Usage())

    async def begin(self, ledger: Ledger, claim: int, transfers_of: Hashable | None,
                    quota: Quota) -> tuple[Usage, TransferUsage | None, int]:
        granted = await self.claim(ledger, claim, quota)
        row = self._row(ledger)
        transfer = None if transfers_of is None else await self.transfers(transfers_of)
        return Usage(row.bytes, row.files, row.reserved), transfer, granted

    async def claim(self, ledger: Ledger, claim: int, quota: Quota) -> int:
        row = self._row(ledger)
        row.reserved += claim
        granted = granted_bytes(quota, Usage(row.bytes, row.files, row.reserved), claim)
        row.reserved -= claim - granted
        return granted

    async def settle(self, ledger: Ledger, *, claimed: int, delta_bytes: int,
                     delta_files: int) -> None:
        row = self._row(ledger)
        row.reserved = max(row.reserved - claimed, 0)
        row.bytes = max(row.bytes + delta_bytes, 0)
        row.files = max(row.files + delta_files, 0)

    async def changed(self, ledger: Ledger, delta_bytes: int, delta_files: int) -> None:
        await self.settle(ledger, claimed=0, delta_bytes=delta_bytes, delta_files=delta_files)

    async def transfers(self, account: Hashable) -> TransferUsage:
        day, month = periods()
        up_day, down_day = self._transfers.get((account, day), (0, 0))
        up_month, down_month = self._transfers.get((account, month), (0, 0))
        return TransferUsage(up_day, up_month, down_day, down_month)

    async def count_transfer(self, account: Hashable, *, uploaded: int = 0,
                             downloaded: int = 0) -> None:
        for period in periods():
            row = self._transfers.setdefault((account, period), [0, 0])
            row[0] += uploaded
            row[1] += downloaded

    async def usage(self, ledger: Ledger) -> Usage:
        row = self._row(ledger)
        return Usage(row.bytes, row.files, row.reserved)


async def scan_usage(path_io: Any, root: Any) -> Usage:
    """What ``root`` holds, counted through the storage's own ``list``/``stat`` (a
    disk walk, an S3 listing): files and their bytes; directories and symlinks are
    not counted, nor uploads in progress (storage does not list them)."""
    started = time.monotonic()
    usage = Usage()
    pending = [root]
    while pending:
        directory = pending.pop()
        subdirectories = []
        async for path in path_io.list(directory):
            # stat while the listing is current: object stores answer from the listing
            stats = await path_io.stat(path)
            mode = getattr(stats, "st_mode", 0)
            if stat_module.S_ISDIR(mode):
                subdirectories.append(path)
            elif stat_module.S_ISLNK(mode):
                continue
            else:
                usage.files += 1
                usage.bytes += int(getattr(stats, "st_size", 0) or 0)
        pending.extend(subdirectories)
    logger.info("counted %d files, %d bytes under %s in %.1f s", usage.files, usage.bytes,
                root, time.monotonic() - started)
    return usage
