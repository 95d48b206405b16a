"""Operator actions on virtual folders: what ``gateway folders ...`` and
``gateway users mount/unmount`` do, minus the terminal.

Values are validated here, so every caller gets the same clear
:class:`~gateway.users.database.errors.AccountError` for an unknown folder, a
duplicate name, a bad root or mount path, instead of a database error.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from backends.mounts import normalize_mount_path
from gateway.users.database.admin import validate_login, validate_root
from gateway.users.database.errors import AccountError
from gateway.users.database.folders import FolderRow, MountRow
from gateway.users.database.models import UserRow

__all__ = (
    "FolderInfo",
    "MountInfo",
    "add_folder",
    "delete_folder",
    "get_folder",
    "list_folders",
    "mount",
    "mounts_of",
    "parse_option",
    "unmount",
    "validate_folder_name",
)

folders = FolderRow.__table__
account_mounts = MountRow.__table__
users = UserRow.__table__

_NAME = re.compile(r"^[^\s/\x00-\x1f\x7f]{1,255}$")


@dataclass
class MountInfo:
    """One folder mounted in one account."""

    login: str
    path: str
    folder: str
    storage_root: str
    read_only: bool


@dataclass
class FolderInfo:
    """A folder as operators see it, with where it is mounted."""

    name: str
    storage_root: str
    options: dict[str, Any] = field(default_factory=dict)
    description: str | None = None
    mounts: list[MountInfo] = field(default_factory=list)
    created_at: float = 0.0
    updated_at: float = 0.0


def validate_folder_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise AccountError(
            f"bad folder name {name!r}: 1 to 255 characters, no spaces, slashes or control characters"
        )
    return name


def validate_mount_path(path: str) -> str:
    try:
        return normalize_mount_path(path)
    except ValueError as exc:
        raise AccountError(f"bad mount path: {exc}") from None


def parse_option(text: str) -> tuple[str, Any]:
    """``key=value``: the value read as JSON when it is JSON (numbers, true/false,
    objects), else kept as the string given."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise AccountError(f"bad option {text!r}: expected KEY=VALUE")
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    return key, value


async def _folder_id(connection: AsyncConnection, name: str) -> int:
    found = (await connection.execute(select(folders.c.id).where(folders.c.name == name))).first()
    if found is None:
        raise AccountError(f"unknown folder {name!r}")
    return int(found.id)


async def _user_id(connection: AsyncConnection, login: str) -> int:
    found = (await connection.execute(select(users.c.id).where(users.c.login == login))).first()
    if found is None:
        raise AccountError(f"unknown user {login!r}")
    return int(found.id)


async def _touch_user(connection: AsyncConnection, user_id: int) -> None:
    await connection.execute(update(users).where(users.c.id == user_id).values(updated_at=time.time()))


async def add_folder(
    engine: AsyncEngine,
    name: str,
    storage_root: str,
    *,
    options: dict[str, Any] | None = None,
    description: str | None = None,
) -> None:
    validate_folder_name(name)
    storage_root = validate_root(storage_root)
    now = time.time()
    try:
        async with engine.begin() as connection:
            if (await connection.execute(select(folders.c.id).where(folders.c.name == name))).first():
                raise AccountError(f"folder {name!r} already exists")
            await connection.execute(
                insert(folders).values(
                    name=name, storage_root=storage_root, options=options or None,
                    description=description or None, created_at=now, updated_at=now,
                )
            )
    except IntegrityError as exc:  # a concurrent add of the same name
        raise AccountError(f"folder {name!r} already exists") from exc


async def _mounts(connection: AsyncConnection, *where: Any) -> list[MountInfo]:
    query = (
        select(users.c.login, account_mounts.c.path, account_mounts.c.read_only,
               folders.c.name, folders.c.storage_root)
        .select_from(account_mounts.join(users, users.c.id == account_mounts.c.user_id)
                     .join(folders, folders.c.id == account_mounts.c.folder_id))
        .where(*where)
        .order_by(users.c.login, account_mounts.c.path)
    )
    return [
        MountInfo(row.login, row.path, row.name, row.storage_root, bool(row.read_only))
        for row in await connection.execute(query)
    ]


def _info(row: Any, mounted: list[MountInfo]) -> FolderInfo:
    return FolderInfo(
        name=row.name,
        storage_root=row.storage_root,
        options=dict(row.options or {}),
        description=row.description,
        mounts=[m for m in mounted if m.folder == row.name],
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def list_folders(engine: AsyncEngine) -> list[FolderInfo]:
    async with engine.connect() as connection:
        rows = (await connection.execute(select(folders).order_by(folders.c.name))).all()
        mounted = await _mounts(connection)
    return [_info(row, mounted) for row in rows]


async def get_folder(engine: AsyncEngine, name: str) -> FolderInfo:
    async with engine.connect() as connection:
        row = (await connection.execute(select(folders).where(folders.c.name == name))).first()
        if row is None:
            raise AccountError(f"unknown folder {name!r}")
        mounted = await _mounts(connection, folders.c.name == name)
    return _info(row, mounted)


async def delete_folder(engine: AsyncEngine, name: str, *, force: bool = False) -> list[MountInfo]:
    """Delete a folder (never its files).  A folder still mounted is refused unless
    ``force``, which unmounts it everywhere first; returns the mounts removed."""
    async with engine.begin() as connection:
        folder_id = await _folder_id(connection, name)
        mounted = await _mounts(connection, account_mounts.c.folder_id == folder_id)
        if mounted and not force:
            where = ", ".join(f"{m.login}:{m.path}" for m in mounted)
            raise AccountError(
                f"folder {name!r} is mounted ({where}): unmount it first, or delete it with --force"
            )
        user_ids = [
            row.user_id for row in await connection.execute(
                select(account_mounts.c.user_id).where(account_mounts.c.folder_id == folder_id)
            )
        ]
        await connection.execute(delete(account_mounts).where(account_mounts.c.folder_id == folder_id))
        await connection.execute(delete(folders).where(folders.c.id == folder_id))
        for user_id in set(user_ids):
            await _touch_user(connection, user_id)
    return mounted


async def mount(engine: AsyncEngine, login: str, path: str, folder: str, *, read_only: bool = False) -> None:
    """Mount ``folder`` at ``path`` in ``login``'s tree (one folder per path)."""
    validate_login(login)
    path = validate_mount_path(path)
    try:
        async with engine.begin() as connection:
            user_id = await _user_id(connection, login)
            folder_id = await _folder_id(connection, folder)
            taken = (await connection.execute(
                select(account_mounts.c.id).where(account_mounts.c.user_id == user_id,
                                                  account_mounts.c.path == path)
            )).first()
            if taken is not None:
                raise AccountError(f"user {login!r} already has a folder at {path}: unmount it first")
            await connection.execute(insert(account_mounts).values(
                user_id=user_id, path=path, folder_id=folder_id, read_only=read_only,
            ))
            await _touch_user(connection, user_id)
    except IntegrityError as exc:  # a concurrent mount at the same path
        raise AccountError(f"user {login!r} already has a folder at {path}") from exc


async def unmount(engine: AsyncEngine, login: str, path: str) -> None:
    path = validate_mount_path(path)
    async with engine.begin() as connection:
        user_id = await _user_id(connection, login)
        removed = await connection.execute(
            delete(account_mounts).where(account_mounts.c.user_id == user_id, account_mounts.c.path == path)
        )
        if removed.rowcount == 0:
            raise AccountError(f"user {login!r} has no folder at {path}")
        await _touch_user(connection, user_id)


async def mounts_of(engine: AsyncEngine, login: str) -> list[MountInfo]:
    async with engine.connect() as connection:
        await _user_id(connection, login)
        return await _mounts(connection, users.c.login == login)
