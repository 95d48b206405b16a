"""What ``gateway users quota`` does: show and set an account's (or a shared
folder's) quota, and count its usage again from storage.

An account is counted from the moment it gets a quota (its ``account_quotas``
row); files it stored before are counted by ``--rescan``, which walks its root
through the storage's own listing (a disk walk, an S3 listing) and replaces the
counters.  Claims of uploads running at that moment are dropped with them: rescan
when the account is not uploading.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.users.database.errors import AccountError
from gateway.users.database.models import UserRow
from gateway.users.database.quotamodels import (
    AccountQuotaRow,
    AccountUsageRow,
    FolderQuotaRow,
    FolderUsageRow,
    TransferUsageRow,
)
from gateway.users.database.quotastore import upsert
from gateway.users.quotas import QUOTA_FIELDS, Quota, TransferUsage, Usage, periods
from gateway.users.quotastore import scan_usage

__all__ = (
    "FOLDER_FIELDS",
    "QuotaInfo",
    "get_folder_quota",
    "get_quota",
    "rescan_account",
    "set_folder_quota",
    "set_quota",
    "store_usage",
)

users = UserRow.__table__
account_quotas = AccountQuotaRow.__table__
account_usage = AccountUsageRow.__table__
transfer_usage = TransferUsageRow.__table__
folder_quotas = FolderQuotaRow.__table__
folder_usage = FolderUsageRow.__table__

#: The limits a shared folder may have (transfer quotas are an account's).
FOLDER_FIELDS = ("max_bytes", "max_files")


@dataclass
class QuotaInfo:
    """An account's (or folder's) quota as the command line shows it."""

    name: str
    quota: Quota | None
    usage: Usage | None
    transfers: TransferUsage
    storage_root: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "limits": None if self.quota is None else self.quota.as_dict(),
            "usage": None if self.usage is None else {
                "bytes": self.usage.bytes, "files": self.usage.files,
                "reserved": self.usage.reserved,
            },
            "transfers": {
                "uploaded_today": self.transfers.uploaded_day,
                "uploaded_this_month": self.transfers.uploaded_month,
                "downloaded_today": self.transfers.downloaded_day,
                "downloaded_this_month": self.transfers.downloaded_month,
            },
        }


async def _account(connection: Any, login: str) -> tuple[int, str]:
    row = (await connection.execute(
        select(users.c.id, users.c.storage_root).where(users.c.login == login)
    )).first()
    if row is None:
        raise AccountError(f"unknown user {login!r}")
    return int(row[0]), str(row[1])


async def get_quota(engine: AsyncEngine, login: str) -> QuotaInfo:
    async with engine.connect() as connection:
        account_id, root = await _account(connection, login)
        row = (await connection.execute(
            select(*(account_quotas.c[name] for name in QUOTA_FIELDS))
            .where(account_quotas.c.user_id == account_id)
        )).first()
        quota = None if row is None else Quota(**dict(zip(QUOTA_FIELDS, row, strict=True)))
        used = (await connection.execute(
            select(account_usage.c.bytes, account_usage.c.files, account_usage.c.reserved)
            .where(account_usage.c.user_id == account_id)
        )).first()
        day, month = periods()
        moved = {
            r[0]: (int(r[1]), int(r[2]))
            for r in await connection.execute(
                select(transfer_usage.c.period, transfer_usage.c.uploaded, transfer_usage.c.downloaded)
                .where(transfer_usage.c.user_id == account_id,
                       transfer_usage.c.period.in_((day, month)))
            )
        }
    usage = None if used is None else Usage(int(used[0]), int(used[1]), int(used[2]))
    transfers = TransferUsage(moved.get(day, (0, 0))[0], moved.get(month, (0, 0))[0],
                              moved.get(day, (0, 0))[1], moved.get(month, (0, 0))[1])
    return QuotaInfo(login, quota, usage, transfers, root)


async def set_quota(engine: AsyncEngine, login: str, changes: dict[str, int | None]) -> bool:
    """Change some limits of ``login`` (the others keep their values; a new quota
    starts with none).  True when the account was not counted before (its files
    need a ``--rescan``)."""
    unknown = set(changes) - set(QUOTA_FIELDS)
    if unknown:
        raise AccountError(f"unknown quota setting(s): {', '.join(sorted(unknown))}")
    Quota(**changes)  # the values checked before anything is written
    now = time.time()
    async with engine.begin() as connection:
        account_id, _root = await _account(connection, login)
        statement = upsert(engine, account_quotas).values(user_id=account_id, updated_at=now, **changes)
        await connection.execute(statement.on_conflict_do_update(
            index_elements=["user_id"], set_={**changes, "updated_at": now},
        ))
        created = await connection.execute(
            upsert(engine, account_usage)
            .values(user_id=account_id, bytes=0, files=0, reserved=0, updated_at=now)
            .on_conflict_do_nothing(index_elements=["user_id"])
        )
    return bool(created.rowcount)


async def store_usage(engine: AsyncEngine, login: str, usage: Usage) -> None:
    """Replace the account's counted usage (after a rescan); running claims dropped."""
    now = time.time()
    async with engine.begin() as connection:
        account_id, _root = await _account(connection, login)
        result = await connection.execute(
            update(account_usage).where(account_usage.c.user_id == account_id)
            .values(bytes=usage.bytes, files=usage.files, reserved=0, updated_at=now)
        )
        if not result.rowcount:
            await connection.execute(account_usage.insert().values(
                user_id=account_id, bytes=usage.bytes, files=usage.files, reserved=0,
                updated_at=now,
            ))


async def rescan_account(engine: AsyncEngine, login: str, path_io: Any, root: Any) -> Usage:
    """Count what ``root`` holds (through ``path_io``) and store it as ``login``'s usage."""
    usage = await scan_usage(path_io, root)
    await store_usage(engine, login, usage)
    return usage


async def get_folder_quota(engine: AsyncEngine, folder: str) -> QuotaInfo:
    async with engine.connect() as connection:
        row = (await connection.execute(
            select(folder_quotas.c.max_bytes, folder_quotas.c.max_files)
            .where(folder_quotas.c.folder == folder)
        )).first()
        used = (await connection.execute(
            select(folder_usage.c.bytes, folder_usage.c.files, folder_usage.c.reserved)
            .where(folder_usage.c.folder == folder)
        )).first()
    quota = None if row is None else Quota(max_bytes=row[0], max_files=row[1])
    usage = None if used is None else Usage(int(used[0]), int(used[1]), int(used[2]))
    return QuotaInfo(folder, quota, usage, TransferUsage())


async def set_folder_quota(engine: AsyncEngine, folder: str, changes: dict[str, int | None]) -> None:
    """Change a shared folder's limits (``max_bytes``, ``max_files``)."""
    if not folder or len(folder) > 255:
        raise AccountError(f"bad folder name {folder!r}")
    unknown = set(changes) - set(FOLDER_FIELDS)
    if unknown:
        raise AccountError(f"a folder has only max-bytes and max-files, not {', '.join(sorted(unknown))}")
    Quota(**changes)
    now = time.time()
    async with engine.begin() as connection:
        statement = upsert(engine, folder_quotas).values(folder=folder, updated_at=now, **changes)
        await connection.execute(statement.on_conflict_do_update(
            index_elements=["folder"], set_={**changes, "updated_at": now},
        ))
        await connection.execute(
            upsert(engine, folder_usage)
            .values(folder=folder, bytes=0, files=0, reserved=0, updated_at=now)
            .on_conflict_do_nothing(index_elements=["folder"])
        )
