"""The decorators handlers use for routine checks (aioftp's names and behaviour).

``ConnectionConditions`` checks (or waits for) session state, ``PathConditions``
checks the argument's path in storage, ``PathPermissions`` checks the user's rights,
``worker`` turns cancellation of a transfer into the ABOR replies.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ("ConnectionConditions", "PathConditions", "PathPermissions", "worker")

Handler = Callable[..., Awaitable[bool]]


def _present(connection: Any, name: str) -> bool:
    value = getattr(connection, name, None)
    return value is not None and value is not False


class ConnectionConditions:
    """Require session state before running a handler.

    Each field is a pair (attribute name, message).  With ``wait=True`` the
    handler waits up to the session's ``wait_future_timeout`` for the state to
    appear (a passive data connection arriving) instead of failing at once.
    """

    user_required = ("user", "no user (use USER firstly)")
    login_required = ("logged", "not logged in")
    passive_server_started = ("passive_server", "no listen socket created (use PASV firstly)")
    data_connection_made = ("data_connection", "no data connection made")
    rename_from_required = ("rename_from", "no filename (use RNFR firstly)")

    def __init__(
        self,
        *fields: tuple[str, str],
        wait: bool = False,
        fail_code: str = "503",
        fail_info: str | None = None,
    ) -> None:
        self.fields = fields
        self.wait = wait
        self.fail_code = fail_code
        self.fail_info = fail_info

    async def _satisfied(self, connection: Any) -> tuple[str, str] | None:
        missing = [f for f in self.fields if not _present(connection, f[0])]
        if not missing or not self.wait:
            return missing[0] if missing else None
        timeout = getattr(connection, "wait_future_timeout", None)
        deadline = None if timeout is None else time.monotonic() + timeout
        changed = getattr(connection, "state_changed", None)
        while True:
            missing = [f for f in self.fields if not _present(connection, f[0])]
            if not missing:
                return None
            remaining = None if deadline is None else deadline - time.monotonic()
            if changed is None or (remaining is not None and remaining <= 0):
                return missing[0]
            changed.clear()
            try:
                async with asyncio.timeout(remaining):
                    await changed.wait()
            except TimeoutError:
                missing = [f for f in self.fields if not _present(connection, f[0])]
                return missing[0] if missing else None

    def __call__(self, f: Handler) -> Handler:
        @functools.wraps(f)
        async def wrapper(cls: Any, connection: Any, rest: str, *args: Any) -> bool:
            failed = await self._satisfied(connection)
            if failed is not None:
                info = self.fail_info or f"bad sequence of commands ({failed[1]})"
                connection.response(self.fail_code, info)
                return True
            return await f(cls, connection, rest, *args)

        return wrapper


class PathConditions:
    """Require the argument's path to exist / not exist / be a file / be a dir."""

    path_must_exists = ("exists", False, "path does not exists")
    path_must_not_exists = ("exists", True, "path already exists")
    path_must_be_dir = ("is_dir", False, "path is not a directory")
    path_must_be_file = ("is_file", False, "path is not a file")

    def __init__(self, *conditions: tuple[str, bool, str]) -> None:
        self.conditions = conditions

    def __call__(self, f: Handler) -> Handler:
        @functools.wraps(f)
        async def wrapper(cls: Any, connection: Any, rest: str, *args: Any) -> bool:
            real_path, _ = cls.get_paths(connection, rest)
            for name, fail, message in self.conditions:
                if await getattr(connection.path_io, name)(real_path) == fail:
                    connection.response("550", message)
                    return True
            return await f(cls, connection, rest, *args)

        return wrapper


class PathPermissions:
    """Require the user's nearest-parent permission on the argument's path."""

    readable = "readable"
    writable = "writable"

    def __init__(self, *permissions: str) -> None:
        self.permissions = permissions

    def __call__(self, f: Handler) -> Handler:
        @functools.wraps(f)
        async def wrapper(cls: Any, connection: Any, rest: str, *args: Any) -> bool:
            _, virtual_path = cls.get_paths(connection, rest)
            permission = await connection.user.get_permissions(virtual_path)
            for name in self.permissions:
                if not getattr(permission, name):
                    connection.response("550", "permission denied")
                    return True
            return await f(cls, connection, rest, *args)

        return wrapper


def worker(f: Handler) -> Handler:
    """Abortable transfer: cancellation (ABOR) answers 426 then 226."""

    @functools.wraps(f)
    async def wrapper(cls: Any, connection: Any, rest: str) -> Any:
        try:
            return await f(cls, connection, rest)
        except asyncio.CancelledError:
            connection.response("426", "transfer aborted")
            connection.response("226", "abort successful")
            return True

    return wrapper
