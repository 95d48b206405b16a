"""USER, PASS, ACCT, QUIT: who the client is, and leaving."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from gateway.server.conditions import ConnectionConditions
from gateway.server.handlers.base import HandlerBase
from gateway.throttle import StreamThrottle
from gateway.users import AbstractUserManager

__all__ = ("LoginCommands",)

logger = logging.getLogger("gateway.server")

#: How long QUIT waits for a running transfer to finish before closing anyway.
QUIT_GRACE = 30.0


class LoginCommands(HandlerBase):
    async def user(self, connection: Any, rest: str) -> bool:
        if connection.user is not None:
            await self._forget_user(connection)
        state, user, info = await self.user_manager.get_user(rest)  # type: ignore[attr-defined]
        responses = AbstractUserManager.GetUserResponse
        if state == responses.OK:
            code = "230"
        elif state == responses.PASSWORD_REQUIRED:
            code = "331"
        else:
            code = "530"
            user = None
        if user is not None:
            connection.user = user
            connection.current_directory = user.home_path
            self._attach_user(connection, user)
            if code == "230":
                connection.logged = True
                logger.info("session %s: logged in as %r", connection.id, user.login)
        connection.response(code, info)
        return True

    @ConnectionConditions(ConnectionConditions.user_required)
    async def pass_(self, connection: Any, rest: str) -> bool:
        if connection.logged:
            connection.response("503", "already logged in")
            return True
        if len(rest) > self.max_password_length:  # type: ignore[attr-defined]
            connection.response("501", "password too long")
            return True
        if await self.user_manager.authenticate(connection.user, rest):  # type: ignore[attr-defined]
            connection.logged = True
            logger.info("session %s: logged in as %r", connection.id, connection.user.login)
            connection.response("230", "normal login")
        else:
            logger.info("session %s: failed login for %r", connection.id, connection.user.login)
            connection.response("530", "wrong password")
        return True

    async def acct(self, connection: Any, rest: str) -> bool:
        if connection.logged:
            connection.response("202", "account not needed")
        elif connection.user is None:
            connection.response("503", "bad sequence of commands (use USER firstly)")
        else:
            connection.response("202", "account not needed; send PASS")
        return True

    async def quit(self, connection: Any, rest: str) -> bool:
        workers = list(connection.extra_workers)
        if workers:
            await asyncio.wait(workers, timeout=QUIT_GRACE)
        connection.response("221", "bye")
        return False

    # -- helpers -------------------------------------------------------------------------
    def _attach_user(self, connection: Any, user: Any) -> None:
        """Per-user storage and throttles for the session."""
        connection.path_io = self.path_io_for_user(connection, user)  # type: ignore[attr-defined]
        shared = self.throttle_per_user.get(user)  # type: ignore[attr-defined]
        if shared is None:
            shared = StreamThrottle.from_limits(user.read_speed_limit, user.write_speed_limit)
            self.throttle_per_user[user] = shared  # type: ignore[attr-defined]
        candidates = {
            "server_global": self.throttle,  # type: ignore[attr-defined]
            "server_per_connection": self.throttle_per_connection,  # type: ignore[attr-defined]
            "user_global": shared,
            "user_per_connection": StreamThrottle.from_limits(
                user.read_speed_limit_per_connection, user.write_speed_limit_per_connection
            ),
        }
        # only limits that exist cost anything; per-connection ones get their own state
        connection.throttles = {
            name: throttle.clone() if name == "server_per_connection" else throttle
            for name, throttle in candidates.items()
            if throttle.read.limit or throttle.write.limit
        }

    async def _forget_user(self, connection: Any) -> None:
        user = connection.user
        connection.user = None
        if connection.logged:
            # logging in again: a fresh login deadline
            connection.logged = False
            connection.login_started = connection.loop.time()
            self.restart_watchdog(connection)  # type: ignore[attr-defined]
        connection._root_realpath = None
        try:
            await self.user_manager.notify_logout(user)  # type: ignore[attr-defined]
        except Exception:
            logger.exception("session %s: notify_logout failed", connection.id)
