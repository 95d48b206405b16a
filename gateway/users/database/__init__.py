"""Accounts in a SQL database (SQLAlchemy 2, asyncpg or aiosqlite).

The names are loaded on first use, so importing the error classes (as the login
handler does) does not pull in SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from gateway.users.database.errors import (
    AccountError,
    LoginRefused,
    MigrationsMissing,
    SchemaMismatch,
    UserSourceUnavailable,
)

if TYPE_CHECKING:
    from gateway.users.database.hashing import HashSettings, PasswordHashing
    from gateway.users.database.limiter import LimiterSettings, LoginLimiter
    from gateway.users.database.manager import DatabaseUserManager

__all__ = (
    "AccountError",
    "DatabaseUserManager",
    "HashSettings",
    "LimiterSettings",
    "LoginLimiter",
    "LoginRefused",
    "MigrationsMissing",
    "PasswordHashing",
    "SchemaMismatch",
    "UserSourceUnavailable",
)

_LAZY = {
    "DatabaseUserManager": "gateway.users.database.manager",
    "HashSettings": "gateway.users.database.hashing",
    "PasswordHashing": "gateway.users.database.hashing",
    "LimiterSettings": "gateway.users.database.limiter",
    "LoginLimiter": "gateway.users.database.limiter",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
