"""Operator actions on accounts: what ``gateway users ...`` does, minus the terminal.

Every value is validated here, so the command line and any other caller get the same
clear :class:`AccountError` for a duplicate login, an unknown user, a bad path or a
bad limit, instead of a database error.
"""

from __future__ import annotations

import codecs
import re
import time
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.users.database.accounts import POLICY_FIELDS
from gateway.users.database.errors import AccountError
from gateway.users.database.folders import MountRow
from gateway.users.database.models import PermissionRow, SessionRow, UserRow

__all__ = (
    "AccountInfo",
    "LIMIT_FIELDS",
    "POLICY_FIELDS",
    "parse_policy",
    "set_policy",
    "add_user",
    "delete_user",
    "get_account",
    "grant",
    "list_accounts",
    "parse_limit",
    "revoke",
    "set_enabled",
    "set_limits",
    "set_password_hash",
    "validate_login",
    "validate_root",
    "validate_virtual_path",
)

users = UserRow.__table__
permissions = PermissionRow.__table__
sessions = SessionRow.__table__

#: The per-user limits an operator can set (column names).
LIMIT_FIELDS = (
    "maximum_connections",
    "read_speed_limit",
    "write_speed_limit",
    "read_speed_limit_per_connection",
    "write_speed_limit_per_connection",
)

_LOGIN = re.compile(r"^[^\s\x00-\x1f\x7f]{1,255}$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


@dataclass
class AccountInfo:
    """One account as operators see it (never with its hash)."""

    login: str
    enabled: bool
    has_password: bool
    home_path: str
    storage_root: str
    limits: dict[str, int | None]
    encoding: str | None = None
    permissions: list[tuple[str, bool, bool]] = field(default_factory=list)
    #: the storage policy: networks, name patterns, hiding, largest file
    policy: dict[str, Any] = field(default_factory=dict)
    sessions: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0


def validate_login(login: str) -> str:
    if not _LOGIN.match(login or ""):
        raise AccountError(
            f"bad login {login!r}: 1 to 255 characters, no spaces or control characters"
        )
    return login


def validate_virtual_path(path: str) -> str:
    """An absolute virtual path, normalized; no ``..`` (it would mean something else
    once the client's current directory is applied) and no control characters."""
    if not path or not path.startswith("/"):
        raise AccountError(f"bad path {path!r}: a virtual path must be absolute (start with /)")
    if any(ord(c) < 32 or c == "\x7f" for c in path):
        raise AccountError(f"bad path {path!r}: control characters are not allowed")
    parts = PurePosixPath(path).parts
    if ".." in parts or "." in path.split("/"):
        raise AccountError(f"bad path {path!r}: '.' and '..' are not allowed")
    return str(PurePosixPath(path))


def validate_encoding(encoding: str | None) -> str | None:
    """A codec Python knows, by its canonical name; None stays None (the listener's)."""
    if encoding is None:
        return None
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise AccountError(
            f"bad encoding {encoding!r}: give a codec name such as cp1251, latin-1, gbk, shift_jis"
        ) from None


def validate_root(root: str) -> str:
    """A storage URL (``s3://bucket/prefix``, ``memory://``) or an absolute local path."""
    if not root or any(ord(c) < 32 for c in root):
        raise AccountError(f"bad storage root {root!r}")
    if _SCHEME.match(root):
        return root
    if not PurePosixPath(root).is_absolute():
        raise AccountError(
            f"bad storage root {root!r}: give an absolute path or a URL such as s3://bucket/prefix"
        )
    return root


def parse_limit(name: str, text: str | int | None) -> int | None:
    """``none`` (or empty) clears a limit; speeds accept k/m/g suffixes (x1024)."""
    if text is None:
        return None
    if isinstance(text, int):
        value = text
    else:
        cleaned = text.strip().lower()
        if cleaned in ("", "none", "unlimited", "-"):
            return None
        match = re.fullmatch(r"(\d+)\s*([kmg]?)(?:i?b?)?(?:/s)?", cleaned)
        if match is None or (name == "maximum_connections" and match.group(2)):
            raise AccountError(f"bad {name.replace('_', ' ')} {text!r}")
        value = int(match.group(1)) * _UNITS[match.group(2)]
    if value < 1:
        raise AccountError(f"bad {name.replace('_', ' ')} {text!r}: must be at least 1 (or none)")
    if value > 2**62:
        raise AccountError(f"bad {name.replace('_', ' ')} {text!r}: too large")
    return value


_LIST_FIELDS = ("allow_from", "deny_from", "allow_names", "deny_names")
_FLAG_FIELDS = ("hide_denied", "names_case_sensitive")


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(item) for item in value]


def parse_policy(changes: dict[str, Any]) -> dict[str, Any]:
    """Column values for storage policy changes, each checked.

    Lists (networks, patterns) replace the stored list; an empty list clears it (NULL).
    Networks are stored normalized (``10.0.0.0/8``; ``::ffff:10.0.0.0/104`` as the IPv4
    network); ``max_file_size`` takes what limits take (``100m``, ``none``).

    :raises AccountError: naming the bad value
    """
    from gateway.users.addresses import parse_networks
    from gateway.users.filerules import validate_pattern

    values: dict[str, Any] = {}
    for name, value in changes.items():
        if name not in POLICY_FIELDS:
            raise AccountError(f"unknown setting {name!r}")
        try:
            if name in ("allow_from", "deny_from"):
                items = [item for text in _as_list(value) for item in text.replace(",", " ").split()]
                if [item.lower() for item in items] == ["none"]:
                    items = []  # "none" clears the list, as for limits
                networks = [str(network) for network in parse_networks(items)]
                values[name] = networks or None
            elif name in ("allow_names", "deny_names"):
                patterns: list[str] = []
                for pattern in _as_list(value):
                    if pattern == "":
                        continue  # "" alone clears the list
                    if validate_pattern(pattern) not in patterns:
                        patterns.append(pattern)
                values[name] = patterns or None
            elif name in _FLAG_FIELDS:
                if not isinstance(value, bool):
                    raise AccountError(f"bad {name.replace('_', ' ')} {value!r}: true or false")
                values[name] = value
            else:
                values[name] = parse_limit(name, value)
        except ValueError as exc:
            if isinstance(exc, AccountError):
                raise
            raise AccountError(str(exc)) from None
    return values


async def _user_id(connection: AsyncConnection, login: str) -> int:
    found = (await connection.execute(select(users.c.id).where(users.c.login == login))).first()
    if found is None:
        raise AccountError(f"unknown user {login!r}")
    return int(found.id)


async def add_user(
    engine: AsyncEngine,
    login: str,
    *,
    password_hash: str | None,
    storage_root: str,
    home_path: str = "/",
    enabled: bool = True,
    permissions_: list[tuple[str, bool, bool]] | None = None,
    limits: dict[str, int | None] | None = None,
    encoding: str | None = None,
    policy: dict[str, Any] | None = None,
) -> None:
    """Create an account; ``permissions_`` defaults to read/write on ``/``; ``policy``
    holds storage policy settings (:func:`parse_policy`)."""
    validate_login(login)
    storage_root = validate_root(storage_root)
    encoding = validate_encoding(encoding)
    home_path = validate_virtual_path(home_path)
    rules = permissions_ if permissions_ is not None else [("/", True, True)]
    rules = [(validate_virtual_path(p), r, w) for p, r, w in rules]
    values: dict[str, Any] = {name: None for name in LIMIT_FIELDS}
    for name, value in (limits or {}).items():
        if name not in LIMIT_FIELDS:
            raise AccountError(f"unknown limit {name!r}")
        values[name] = parse_limit(name, value)
    values.update(parse_policy(policy or {}))
    now = time.time()
    try:
        async with engine.begin() as connection:
            if (
                await connection.execute(select(users.c.id).where(users.c.login == login))
            ).first() is not None:
                raise AccountError(f"user {login!r} already exists")
            result = await connection.execute(
                insert(users)
                .values(
                    login=login,
                    password_hash=password_hash,
                    enabled=enabled,
                    home_path=home_path,
                    storage_root=storage_root,
                    encoding=encoding,
                    created_at=now,
                    updated_at=now,
                    **values,
                )
                .returning(users.c.id)
            )
            user_id = result.scalar_one()
            for path, readable, writable in rules:
                await connection.execute(
                    insert(permissions).values(
                        user_id=user_id, path=path, readable=readable, writable=writable
                    )
                )
    except IntegrityError as exc:  # a concurrent add of the same login
        raise AccountError(f"user {login!r} already exists") from exc


async def _touch(connection: AsyncConnection, user_id: int) -> None:
    await connection.execute(update(users).where(users.c.id == user_id).values(updated_at=time.time()))


async def set_password_hash(engine: AsyncEngine, login: str, password_hash: str | None) -> None:
    async with engine.begin() as connection:
        user_id = await _user_id(connection, login)
        await connection.execute(
            update(users)
            .where(users.c.id == user_id)
            .values(password_hash=password_hash, updated_at=time.time())
        )


async def set_enabled(engine: AsyncEngine, login: str, enabled: bool) -> None:
    async with engine.begin() as connection:
        user_id = await _user_id(connection, login)
        await connection.execute(
            update(users).where(users.c.id == user_id).values(enabled=enabled, updated_at=time.time())
        )


async def delete_user(engine: AsyncEngine, login: str) -> None:
    async with engine.begin() as connection:
        user_id = await _user_id(connection, login)
        # explicit, so it holds even where foreign keys are not enforced
        await connection.execute(delete(permissions).where(permissions.c.user_id == user_id))
        await connection.execute(delete(MountRow.__table__).where(MountRow.__table__.c.user_id == user_id))
        await connection.execute(delete(sessions).where(sessions.c.user_id == user_id))
        await connection.execute(delete(users).where(users.c.id == user_id))


async def grant(engine: AsyncEngine, login: str, path: str, *, readable: bool, writable: bool) -> None:
    """Set the rule for ``path`` (replacing an existing rule for the same path)."""
    path = validate_virtual_path(path)
    async with engine.begin() as connection:
        user_id = await _user_id(connection, login)
        changed = await connection.execute(
            update(permissions)
            .where(permissions.c.user_id == user_id, permissions.c.path == path)
            .values(readable=readable, writable=writable)
        )
        if changed.rowcount == 0:
            await connection.execute(
                insert(permissions).values(
                    user_id=user_id, path=path, readable=readable, writable=writable
                )
            )
        await _touch(connection, user_id)


async def revoke(engine: AsyncEngine, login: str, path: str) -> None:
    """Remove the rule for ``path``; the nearest parent rule applies there afterwards."""
    path = validate_virtual_path(path)
    async with engine.begin() as connection:
        user_id = await _user_id(connection, login)
        removed = await connection.execute(
            delete(permissions).where(permissions.c.user_id == user_id, permissions.c.path == path)
        )
        if removed.rowcount == 0:
            raise AccountError(f"user {login!r} has no rule for {path!r}")
        await _touch(connection, user_id)


async def set_limits(engine: AsyncEngine, login: str, changes: dict[str, Any]) -> None:
    """Change some limits; a value of None (or "none") removes that limit."""
    values: dict[str, Any] = {}
    for name, value in changes.items():
        if name not in LIMIT_FIELDS:
            raise AccountError(f"unknown limit {name!r}")
        values[name] = parse_limit(name, value)
    async with engine.begin() as connection:
        user_id = await _user_id(connection, login)
        if values:
            await connection.execute(
                update(users).where(users.c.id == user_id).values(updated_at=time.time(), **values)
            )


async def set_policy(engine: AsyncEngine, login: str, changes: dict[str, Any]) -> None:
    """Change some of the account's storage policy (:func:`parse_policy`)."""
    values = parse_policy(changes)
    async with engine.begin() as connection:
        user_id = await _user_id(connection, login)
        if values:
            await connection.execute(
                update(users).where(users.c.id == user_id).values(updated_at=time.time(), **values)
            )


async def set_home(engine: AsyncEngine, login: str, *, home_path: str | None = None,
                   storage_root: str | None = None, encoding: str | None = None) -> None:
    """Change where an account lives; ``encoding`` "" goes back to the listener's."""
    values: dict[str, Any] = {}
    if encoding is not None:
        values["encoding"] = validate_encoding(encoding) if encoding else None
    if home_path is not None:
        values["home_path"] = validate_virtual_path(home_path)
    if storage_root is not None:
        values["storage_root"] = validate_root(storage_root)
    async with engine.begin() as connection:
        user_id = await _user_id(connection, login)
        if values:
            await connection.execute(
                update(users).where(users.c.id == user_id).values(updated_at=time.time(), **values)
            )


def _info(row: Any, rules: list[tuple[str, bool, bool]], count: int) -> AccountInfo:
    return AccountInfo(
        login=row.login,
        enabled=bool(row.enabled),
        has_password=row.password_hash is not None,
        home_path=row.home_path,
        storage_root=row.storage_root,
        encoding=row.encoding,
        limits={name: getattr(row, name) for name in LIMIT_FIELDS},
        permissions=rules,
        policy=_policy_info(row),
        sessions=count,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _policy_info(row: Any) -> dict[str, Any]:
    info: dict[str, Any] = {}
    for name in POLICY_FIELDS:
        value = getattr(row, name, None)
        if name in _LIST_FIELDS:
            value = list(value or [])
        elif name in _FLAG_FIELDS:
            value = bool(value)
        info[name] = value
    return info


async def get_account(engine: AsyncEngine, login: str) -> AccountInfo:
    async with engine.connect() as connection:
        row = (await connection.execute(select(users).where(users.c.login == login))).first()
        if row is None:
            raise AccountError(f"unknown user {login!r}")
        rules = [
            (r.path, bool(r.readable), bool(r.writable))
            for r in await connection.execute(
                select(permissions).where(permissions.c.user_id == row.id).order_by(permissions.c.path)
            )
        ]
        count = (
            await connection.execute(
                select(func.count()).select_from(sessions).where(sessions.c.user_id == row.id)
            )
        ).scalar_one()
    return _info(row, rules, int(count))


async def list_accounts(engine: AsyncEngine) -> list[AccountInfo]:
    async with engine.connect() as connection:
        rows = (await connection.execute(select(users).order_by(users.c.login))).all()
        rules: dict[int, list[tuple[str, bool, bool]]] = {}
        for r in await connection.execute(select(permissions).order_by(permissions.c.path)):
            rules.setdefault(r.user_id, []).append((r.path, bool(r.readable), bool(r.writable)))
        counts: dict[int, int] = dict(
            (
                await connection.execute(
                    select(sessions.c.user_id, func.count()).group_by(sessions.c.user_id)
                )
            ).all()
        )
    return [_info(row, rules.get(row.id, []), int(counts.get(row.id, 0))) for row in rows]
