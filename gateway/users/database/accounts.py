"""What a database account looks like to the server: a ``User`` plus its row identity.

The server keys per-user state (the shared throttle) by the user object, and
``notify_logout`` gets the object back when a session ends.  Each session therefore
gets its own copy, so a logout releases exactly that session's connection slot, while
copies of one account version compare and hash equal, so they share one throttle.
"""

from __future__ import annotations

import codecs
import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from gateway.users.model import Mount, Permission, User

logger = logging.getLogger("gateway.users.database")

__all__ = ("DatabaseUser", "Account", "POLICY_FIELDS", "account_from_rows")


class DatabaseUser(User):
    """A ``User`` loaded from the database (one copy per session)."""

    account_id: int | None = None
    #: everything the server uses of the row; equal signatures mean equal behaviour
    signature: tuple[Any, ...] = ()
    #: the ``sessions`` row holding this session's slot, or a local marker
    slot: Any = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DatabaseUser):
            return NotImplemented
        return (self.account_id, self.signature) == (other.account_id, other.signature)

    def __hash__(self) -> int:
        return hash((self.account_id, self.signature))

    def for_session(self) -> DatabaseUser:
        clone = copy.copy(self)
        clone.slot = None
        return clone


@dataclass
class Account:
    """A cached account: the prototype user and what only the manager may see."""

    user: DatabaseUser
    password_hash: str | None
    enabled: bool
    #: False when the row's storage policy cannot be read: never logs in
    usable: bool = True

    @property
    def id(self) -> int:
        assert self.user.account_id is not None
        return self.user.account_id


def _known_encoding(name: str | None, login: str) -> str | None:
    """The row's encoding, or None (the listener's) when this Python has no such codec:
    one account's odd value must not stop its logins."""
    if name is None:
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        logger.warning("account %r: unknown encoding %r, using the listener's", login, name)
        return None


def account_from_rows(
    row: Any, permission_rows: list[Any], previous: Account | None, mount_rows: Sequence[Any] = ()
) -> Account:
    """Build (or reuse, when nothing changed) the account for a users row and its rules
    (and its folders: rows with ``mount_path``, ``folder_name``, ``folder_root``,
    ``folder_options``, ``mount_read_only``).

    Reusing the previous prototype keeps the server's per-user throttle state across
    cache refreshes of an unchanged account.
    """
    rules = tuple(sorted((p.path, bool(p.readable), bool(p.writable)) for p in permission_rows))
    policy = _policy(row)
    mounts = _mounts(mount_rows)
    signature = (
        row.login,
        row.home_path,
        row.storage_root,
        row.encoding,
        row.maximum_connections,
        row.read_speed_limit,
        row.write_speed_limit,
        row.read_speed_limit_per_connection,
        row.write_speed_limit_per_connection,
        rules,
        tuple(sorted(policy.items())),
        tuple((m.path, m.folder, m.root, repr(m.options), m.read_only) for m in mounts),
    )
    if (
        previous is not None
        and previous.user.account_id == row.id
        and previous.user.signature == signature
    ):
        previous.password_hash = row.password_hash
        previous.enabled = bool(row.enabled) and previous.usable
        return previous
    usable = True
    try:
        user = _user(row, rules, policy, mounts)
    except ValueError as exc:
        # a value written around `gateway users` (by hand, in SQL): ignoring a bad
        # network or pattern would widen what the account may do, so it may not log in
        logger.error("account %r refused: its storage policy is not valid: %s", row.login, exc)
        user = _user(row, rules, {})
        usable = False
    user.account_id = row.id
    user.signature = signature
    return Account(
        user=user,
        password_hash=row.password_hash,
        enabled=bool(row.enabled) and usable,
        usable=usable,
    )


#: the storage policy's columns, named as the ``User`` keyword arguments they become
#: (what ``gateway users set`` changes)
POLICY_FIELDS = (
    "allow_from",
    "deny_from",
    "allow_names",
    "deny_names",
    "hide_denied",
    "names_case_sensitive",
    "max_file_size",
)


def _policy(row: Any) -> dict[str, Any]:
    """The row's storage policy: lists as tuples (hashable, for the signature)."""
    policy: dict[str, Any] = {}
    for name in POLICY_FIELDS:
        value = getattr(row, name, None)
        if isinstance(value, list):
            value = tuple(value)
        elif name in ("hide_denied", "names_case_sensitive"):
            value = bool(value)
        policy[name] = value
    return policy


def _mounts(rows: Sequence[Any]) -> tuple[Mount, ...]:
    """The account's folders, by mount path; a row that is not a valid mount is left
    out (logged): it never widens what the account may reach."""
    mounts = []
    for row in sorted(rows, key=lambda r: r.mount_path):
        try:
            mounts.append(Mount(row.mount_path, row.folder_name, row.folder_root,
                                dict(row.folder_options or {}), bool(row.mount_read_only)))
        except ValueError as exc:
            logger.error("folder %r at %r left out: %s", row.folder_name, row.mount_path, exc)
    return tuple(mounts)


def _user(row: Any, rules: tuple[tuple[str, bool, bool], ...], policy: dict[str, Any],
          mounts: tuple[Mount, ...] = ()) -> DatabaseUser:
    return DatabaseUser(
        row.login,
        None,
        base_path=row.storage_root,
        home_path=PurePosixPath(row.home_path),
        encoding=_known_encoding(row.encoding, row.login),
        permissions=_permissions(rules),
        maximum_connections=row.maximum_connections,
        read_speed_limit=row.read_speed_limit,
        write_speed_limit=row.write_speed_limit,
        read_speed_limit_per_connection=row.read_speed_limit_per_connection,
        write_speed_limit_per_connection=row.write_speed_limit_per_connection,
        mounts=mounts,
        **policy,
    )


def _permissions(rules: tuple[tuple[str, bool, bool], ...]) -> list[Permission]:
    """The rules as permissions, denying what no rule covers.

    ``User.get_permissions`` grants read/write where no rule applies (aioftp's
    default, kept for in-memory users); an account in the database gets only what an
    operator granted, so a missing ``/`` rule means "nothing here".
    """
    permissions = [Permission(path, readable=r, writable=w) for path, r, w in rules]
    if not any(path == "/" for path, _, _ in rules):
        permissions.append(Permission("/", readable=False, writable=False))
    return permissions
