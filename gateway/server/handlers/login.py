"""USER, PASS, ACCT, QUIT: who the client is, and leaving."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from gateway.server.encodings import apply_user_encoding
from gateway.server.filepolicy import guard_uploads
from gateway.server.handlers.base import HandlerBase
from gateway.server.quotapolicy import guard_quotas
from gateway.server.session import Session
from gateway.server.watchdog import restart_watchdog
from gateway.throttle import StreamThrottle
from gateway.users import AbstractUserManager
from gateway.users.addresses import AddressRules
from gateway.users.database.errors import LoginRefused, LoginsBusy, UserSourceUnavailable
from gateway.users.database.limiter import AttemptRefused

__all__ = ("LoginCommands",)

logger = logging.getLogger("gateway.server")

#: The 421 reply when the user manager cannot reach its accounts (database down).
UNAVAILABLE_TEXT = "service not available: accounts unreachable, try again later"
#: The 421 reply when too many password checks are already running or queued.
BUSY_TEXT = "too many logins in progress; try again later"
#: How long QUIT waits for a running transfer to finish before closing anyway.
QUIT_GRACE = 30.0
#: The 530 after a wrong password, and after a right one from a refused address: the
#: same words, so the reply never tells which.
WRONG_PASSWORD_TEXT = "wrong password"
#: The 530 to USER of an account without a password, from an address it may not use.
ADDRESS_REFUSED_TEXT = "login incorrect"


class LoginCommands(HandlerBase):
    async def user(self, connection: Session, rest: str) -> bool:
        if connection.user is not None:
            await self.end_login(connection)
        if self._banned(connection):
            return False
        connection.login.login_name = rest  # what the client asked for, for logs and events
        try:
            state, user, info = await self.user_manager.get_user(rest)
        except UserSourceUnavailable:
            connection.response("421", UNAVAILABLE_TEXT)
            return False
        responses = AbstractUserManager.GetUserResponse
        if state == responses.OK:
            code = "230"
        elif state == responses.PASSWORD_REQUIRED:
            code = "331"
        else:
            code = "530"
            user = None
        if user is not None and code == "331":
            # nothing of the account is attached before its password: the reply and
            # the work are the same for every name, and nothing is held yet.  Its
            # code page applies at once: a device sends its password in it too.
            connection.user = user
            apply_user_encoding(connection, user)
        elif user is not None and (why := self._address_refusal(connection, user)) is not None:
            # an account without a password (anonymous), from a network it may not use:
            # what get_user took is given back, and nothing of the account is attached
            logger.info("session %s: login of %r refused: %s", connection.id, user.login, why)
            try:
                await self.user_manager.notify_logout(user)
            except Exception:
                logger.exception("session %s: notify_logout failed", connection.id)
            await self.login_event(connection, rest, False)
            connection.response("530", ADDRESS_REFUSED_TEXT)
            return True
        elif user is not None:
            try:
                self._attach_user(connection, user)
            except (ImportError, ValueError, OSError) as exc:
                # a root naming a storage package that is not installed, or a bad root:
                # the operator's problem, said plainly in the log, not the client's
                logger.error("session %s: storage of %r cannot be opened: %s",
                             connection.id, user.login, exc)
                try:
                    await self.user_manager.notify_logout(user)
                except Exception:
                    logger.exception("session %s: notify_logout failed", connection.id)
                await self.login_event(connection, user.login, False)
                connection.response("530", "login refused: this account's storage is not available")
                return True
            connection.user = user
            connection.current_directory = user.home_path
            await self._ensure_local_root(connection, user)
            apply_user_encoding(connection, user)
            self._logged_in(connection)
            logger.info("session %s: logged in as %r", connection.id, user.login)
            await self.login_event(connection, user.login, True)
        elif code == "530":
            logger.info("session %s: login refused for %r: %s", connection.id, rest, info)
            await self.login_event(connection, rest, False)
        connection.response(code, info)
        return True

    async def pass_(self, connection: Session, rest: str) -> bool:
        if connection.logged:
            connection.response("503", "already logged in")
            return True
        if len(rest) > self.max_password_length:
            connection.response("501", "password too long")
            return True
        if self._banned(connection):
            return False
        name = connection.login.login_name or connection.user.login
        # a manager may slow down guessing: it names a limiter keyed by client address
        limiter = getattr(self.user_manager, "login_limiter", None)
        attempt = None
        if limiter is not None:
            try:
                # a try is reserved before any hashing: tries in flight count as failures
                attempt = limiter.begin(connection.client_host, name)
            except AttemptRefused as exc:
                return await self._refused(connection, name, exc)
        refused_address: str | None = None
        try:
            if attempt is not None:
                # (shared between nodes: the database may refuse it there)
                await attempt.wait_turn()
            user = connection.user
            try:
                ok = await self.user_manager.authenticate(user, rest)
            except LoginRefused:
                # right password, no free slot: from a refused address that is still
                # only "wrong password" (the reply would tell the password was right)
                refused_address = self._address_refusal(connection, user)
                if refused_address is None:
                    raise
                ok = True
            else:
                if ok:
                    refused_address = self._address_refusal(connection, user)
            if ok and refused_address is None:
                user = await self._session_user(user)
        except AttemptRefused as exc:
            return await self._refused(connection, name, exc)
        except LoginsBusy:
            if attempt is not None:
                attempt.abandoned()
            connection.response("421", BUSY_TEXT)
            return False
        except UserSourceUnavailable:
            if attempt is not None:
                attempt.abandoned()
            connection.response("421", UNAVAILABLE_TEXT)
            return False
        except LoginRefused as exc:
            if attempt is not None:
                attempt.succeeded()  # the right password: a full account is no guess
            connection.response("530", str(exc))
            return True
        except BaseException:
            if attempt is not None:
                attempt.failed()  # a check that never finished is not a success
            raise
        if refused_address is not None:
            return await self._refuse_address(connection, name, user, attempt, refused_address)
        if not ok:
            delay = attempt.failed() if attempt is not None else 0.0
            if delay:
                await asyncio.sleep(delay)
            logger.info("session %s: failed login for %r", connection.id, name)
            await self.login_event(connection, name, False)
            connection.response("530", WRONG_PASSWORD_TEXT)
            return True
        if attempt is not None:
            attempt.succeeded()
        connection.user = user
        try:
            self._attach_user(connection, user)
        except (ImportError, ValueError, OSError) as exc:
            logger.error("session %s: storage of %r cannot be opened: %s",
                         connection.id, user.login, exc)
            await self.end_login(connection)
            await self.login_event(connection, name, False)
            connection.response("530", "login refused: this account's storage is not available")
            return True
        connection.current_directory = user.home_path
        await self._ensure_local_root(connection, user)
        apply_user_encoding(connection, user)
        self._logged_in(connection)
        logger.info("session %s: logged in as %r", connection.id, user.login)
        await self.login_event(connection, user.login, True)
        connection.response("230", "normal login")
        return True

    async def _session_user(self, user: Any) -> Any:
        """The user the session holds once the password is right (its slot taken).

        :raises LoginRefused: the account's connection limit is reached
        """
        hook = getattr(self.user_manager, "logged_in", None)
        return user if hook is None else await hook(user)

    async def acct(self, connection: Session, rest: str) -> bool:
        if connection.logged:
            connection.response("202", "account not needed")
        elif connection.user is None:
            connection.response("503", "bad sequence of commands (use USER firstly)")
        else:
            connection.response("202", "account not needed; send PASS")
        return True

    async def quit(self, connection: Session, rest: str) -> bool:
        workers = list(connection.extra_workers)
        if workers:
            await asyncio.wait(workers, timeout=QUIT_GRACE)
        connection.response("221", "bye")
        return False

    # -- helpers -------------------------------------------------------------------------
    async def login_event(self, connection: Session, name: str | None, ok: bool) -> None:
        """A login attempt ended: listeners are told, durable ones before the reply."""
        self.notify("login", connection, name, ok)
        operation = self.operation(connection, "login" if ok else "login_failed")
        if not ok:
            operation.login = name  # the name tried, not an account the session holds
        await self.emit(connection, operation)

    @staticmethod
    def _address_refusal(connection: Session, user: Any) -> str | None:
        """Why the account may not log in from the client's address; None when it may."""
        rules = getattr(user, "addresses", None)
        if not isinstance(rules, AddressRules) or not rules.active:
            return None
        return rules.refusal(connection.client_host)

    async def _refuse_address(
        self, connection: Session, name: str, user: Any, attempt: Any, why: str
    ) -> bool:
        """A right password from an address the account may not use.

        The client gets what a wrong password gets, after as long: the reply must not
        tell whether the password was right.  It is no guess, so the limiter does not
        count it (nor forget earlier failures); what ``authenticate`` took is given
        back, and the session stays as after a wrong password (it may try again).
        """
        delay = attempt.not_counted() if attempt is not None else 0.0
        hook = getattr(self.user_manager, "login_refused", None)
        if hook is not None:
            try:
                await hook(user)
            except Exception:
                logger.exception("session %s: login_refused failed", connection.id)
        if delay:
            await asyncio.sleep(delay)
        logger.info("session %s: login of %r refused: %s", connection.id, name, why)
        await self.login_event(connection, name, False)
        connection.response("530", WRONG_PASSWORD_TEXT)
        return True

    async def _refused(self, connection: Session, name: str, exc: AttemptRefused) -> bool:
        """A try the limiter did not allow: 421 and the end of the session for the
        client's network, 530 for a locked login."""
        logger.info("session %s: password login for %r refused: %s", connection.id, name, exc)
        await self.login_event(connection, name, False)
        if exc.scope == "address":
            connection.response("421", str(exc))
            return False
        connection.response("530", str(exc))
        return True

    def _banned(self, connection: Session) -> bool:
        """Answer 421 (the session then ends) while the client's address is banned."""
        limiter = getattr(self.user_manager, "login_limiter", None)
        if limiter is None or not limiter.ban_remaining(connection.client_host):
            return False
        logger.info("session %s: address %s is banned", connection.id, connection.client_host)
        connection.response("421", "too many failed logins; try again later")
        return True

    async def _ensure_local_root(self, connection: Session, user: Any) -> None:
        """A local-disk root that does not exist yet is created at first login, so an
        account added with ``gateway users add --root /srv/ftp/alice`` just works."""
        if not isinstance(user.base_path, Path) or connection.login.storage_root is not None:
            return
        if user in self.roots_made:
            return
        root = connection.user_root
        try:
            if not await connection.path_io.exists(root):
                await connection.path_io.mkdir(root, parents=True)
                logger.info("session %s: created root %s for %r", connection.id, root, user.login)
            with contextlib.suppress(TypeError):  # a user class without weak references
                self.roots_made.add(user)
        except Exception as exc:  # the login goes on; commands will report the problem
            logger.warning("session %s: cannot create root %s: %s", connection.id, root, exc)

    def _attach_user(self, connection: Session, user: Any) -> None:
        """Per-user storage and throttles for the session."""
        login = connection.login
        path_io, login.storage_root = self.storage_for_user(connection, user)
        # uploads checked against the account's file rules (names, largest file)
        login.path_io = guard_uploads(connection, path_io, user)
        # and against its quotas (bytes and files kept, bytes moved per day and month)
        login.path_io = guard_quotas(connection, login.path_io, user, self.user_manager)
        shared = self.throttle_per_user.get(user)
        if shared is None:
            shared = StreamThrottle.from_limits(user.read_speed_limit, user.write_speed_limit)
            self.throttle_per_user[user] = shared
        self.hold_user_throttle(connection, user)
        candidates = {
            "server_global": self.throttle,
            "server_per_connection": self.throttle_per_connection,
            "user_global": shared,
            "user_per_connection": StreamThrottle.from_limits(
                user.read_speed_limit_per_connection, user.write_speed_limit_per_connection
            ),
        }
        # only limits that exist cost anything; per-connection ones get their own state
        login.throttles = {
            name: throttle.clone() if name == "server_per_connection" else throttle
            for name, throttle in candidates.items()
            if throttle.read.limit or throttle.write.limit
        }
        connection.login_changed(fxp_allowed=False)

    def _logged_in(self, connection: Session) -> None:
        connection.login.logged = True
        connection.login_changed(fxp_allowed=self.fxp_allowed(connection))

    async def end_login(self, connection: Session) -> None:
        """Forget who is logged in (USER again, REIN, AUTH before PASS)."""
        login = connection.login
        user, was_logged = login.user, login.logged
        self.release_user_throttle(connection)
        login.forget_user()
        connection.login_changed(fxp_allowed=False)
        if was_logged:
            # logging in again: a fresh login deadline
            connection.login_started = connection.loop.time()
            restart_watchdog(connection)
        if user is None:
            return
        try:
            await self.user_manager.notify_logout(user)
        except Exception:
            logger.exception("session %s: notify_logout failed", connection.id)
