"""``DatabaseUserManager``: accounts, rights and limits from a SQL database.

What the wire shows is the same for an unknown login, a disabled account and a wrong
password: USER always answers 331 and PASS fails with the same reply after the same
argon2 work.  Lookups are cached for ``cache_ttl`` seconds; connection slots of users
with a limit are counted in the database so the limit holds across nodes; a database
that cannot be reached turns into :class:`UserSourceUnavailable` (the server answers
421) and the next login tries again, so recovery needs no restart.  The login limiter's
failures and bans are counted in the database too (``login_failures``), so a guesser
spreading tries over several nodes gets no more of them than on one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import select, update
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.users.database import schema
from gateway.users.database.accounts import Account, DatabaseUser, account_from_rows
from gateway.users.database.cache import LoadCancelled, TTLCache
from gateway.users.database.engine import create_engine
from gateway.users.database.errors import LoginRefused, SchemaMismatch, UserSourceUnavailable
from gateway.users.database.failures import SharedFailures
from gateway.users.database.folders import FolderRow, MountRow
from gateway.users.database.hashing import HashSettings, PasswordHashing
from gateway.users.database.limiter import LoginLimiter
from gateway.users.database.models import PermissionRow, UserRow
from gateway.users.database.slots import SessionSlots
from gateway.users.database.urls import database_url, safe_url
from gateway.users.managers import AbstractUserManager
from gateway.users.model import User

__all__ = ("DatabaseUserManager",)

logger = logging.getLogger("gateway.users.database")

T = TypeVar("T")

users = UserRow.__table__
permissions = PermissionRow.__table__
folders = FolderRow.__table__
account_mounts = MountRow.__table__

#: Failures that mean "the database cannot answer now", not "the code is wrong".
_UNAVAILABLE = (SQLAlchemyError, OSError, TimeoutError, LoadCancelled)

_DEFAULT: Any = object()

#: Marks a session of a user without a limit: nothing to give back in the database.
_LOCAL_SLOT = "local"


class DatabaseUserManager(AbstractUserManager):
    """Accounts from the database named by ``url`` (or ``GATEWAY_DATABASE_URL``).

    :param url: SQLAlchemy URL; ``postgresql://`` uses asyncpg, ``sqlite://`` aiosqlite
    :param cache_ttl: seconds a looked-up account is reused; changes made with
        ``gateway users`` reach new logins within this time
    :param hashing: argon2id parameters (``HashSettings`` or a ``PasswordHashing``);
        by default from ``GATEWAY_ARGON2_*`` or argon2-cffi's defaults
    :param login_limiter: slows down and bans guessing addresses; ``None`` disables
    :param share_login_failures: count the limiter's failures and bans in the database,
        so that every node using it sees them (PostgreSQL and SQLite; default on)
    :param query_timeout: seconds any database operation may take before the login is
        answered 421
    :param heartbeat_interval, stale_after: how often this node marks its sessions
        alive, and after how long without a mark another node's sessions stop counting
    :param create_schema: create the schema in an empty database on first use
        (default: for SQLite only, so the embedded database needs no setup)
    """

    def __init__(
        self,
        url: str | URL | None = None,
        *,
        timeout: float | None = None,
        cache_ttl: float = 5.0,
        hashing: HashSettings | PasswordHashing | None = None,
        login_limiter: LoginLimiter | None = _DEFAULT,
        query_timeout: float = 5.0,
        heartbeat_interval: float = 10.0,
        stale_after: float = 60.0,
        create_schema: bool | None = None,
        engine: AsyncEngine | None = None,
        node: str | None = None,
        share_login_failures: bool = True,
    ) -> None:
        super().__init__(timeout=timeout)
        if engine is None:
            engine = create_engine(database_url(url), query_timeout=query_timeout)
        self.engine = engine
        self.url = engine.url
        if isinstance(hashing, PasswordHashing):
            self.hashing = hashing
        else:
            self.hashing = PasswordHashing(hashing)
        self.login_limiter = LoginLimiter() if login_limiter is _DEFAULT else login_limiter
        #: the limiter's counts in the database (None: this process counts alone)
        self.login_failures: SharedFailures | None = None
        if self.login_limiter is not None and share_login_failures:
            if SharedFailures.supports(engine):
                self.login_failures = SharedFailures(
                    engine,
                    forget_after=self.login_limiter.settings.forget_after,
                    query_timeout=query_timeout,
                    prepare=self.connect,
                )
                self.login_limiter.share(self.login_failures)
            else:
                logger.warning("failed logins are counted per node: %s cannot share them",
                               engine.url.get_backend_name())
        self.query_timeout = query_timeout
        self.cache: TTLCache[Account] = TTLCache(cache_ttl)
        self.slots = SessionSlots(
            engine, node=node, heartbeat_interval=heartbeat_interval, stale_after=stale_after
        )
        if create_schema is None:
            create_schema = engine.url.get_backend_name() == "sqlite"
        self.create_schema = create_schema
        self._ready = False
        self._ready_lock: asyncio.Lock | None = None
        self._outage = False
        # Stand-in for unknown and disabled logins: never logs in, holds no slot.
        self._nobody = DatabaseUser(None, None, permissions=[])

    # -- life cycle ---------------------------------------------------------------------
    async def connect(self) -> None:
        """Check (or, for a new embedded database, create) the schema; start heartbeats.

        Call it before serving so a wrong schema stops the start with a message naming
        the command to run; otherwise the first login calls it.

        :raises SchemaMismatch: the schema is not the one this code needs
        """
        if self._ready:
            return
        if self._ready_lock is None:
            self._ready_lock = asyncio.Lock()
        async with self._ready_lock:
            if self._ready:
                return
            async with asyncio.timeout(max(self.query_timeout, 30.0)):
                if self.create_schema and await schema.is_empty(self.engine):
                    logger.info("creating the accounts schema in %s", safe_url(self.url))
                    await schema.upgrade(self.engine)
                await schema.check_schema(self.engine)
            self.slots.start()
            self._ready = True

    async def close(self) -> None:
        """Give back this node's connection slots and close the database connections."""
        if self.login_failures is not None:
            await self.login_failures.close()
        if self._ready:
            await self.slots.close()
            self._ready = False
        await self.engine.dispose()

    async def __aenter__(self) -> DatabaseUserManager:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- AbstractUserManager ----------------------------------------------------------------
    async def get_user(
        self, login: str
    ) -> tuple[AbstractUserManager.GetUserResponse, User | None, str]:
        """331 for every login with a password, known or not; 230 for password-less accounts."""
        response = self.GetUserResponse
        account = await self._account(login)
        if account is None or not account.enabled:
            return response.PASSWORD_REQUIRED, self._nobody, "password required"
        user = account.user.for_session()
        if account.password_hash is not None:
            return response.PASSWORD_REQUIRED, user, "password required"
        # an account without a password (anonymous, if an operator created one)
        refusal = await self._take_slot(user)
        if refusal is not None:
            return response.ERROR, None, refusal
        return response.OK, user, "login without password"

    async def authenticate(self, user: User, password: str) -> bool:
        """Verify with argon2 (a dummy hash for unknown logins), rehash if the cost changed.

        :raises LoginRefused: right password, but the user's connection limit is reached
        :raises UserSourceUnavailable: the database cannot be reached
        """
        account: Account | None = None
        if isinstance(user, DatabaseUser) and user.account_id is not None and user.login:
            account = await self._account(user.login)
            if account is not None and (not account.enabled or account.id != user.account_id):
                account = None  # disabled or replaced since USER
        if account is None or not isinstance(user, DatabaseUser):
            await self.hashing.verify_async(None, password)
            return False
        if account.password_hash is None:
            return True  # logged in at USER already
        stored = account.password_hash
        if not await self.hashing.verify_async(stored, password):
            return False
        if self.hashing.needs_rehash(stored):
            await self._rehash(account, stored, password)
        refusal = await self._take_slot(user)
        if refusal is not None:
            raise LoginRefused(refusal)
        return True

    async def login_refused(self, user: User) -> None:
        """The slot ``authenticate`` took for a login the server then refused: given back."""
        await self.notify_logout(user)

    async def notify_logout(self, user: User) -> None:
        """Give back the session's slot; if the database is down, the heartbeat retries."""
        if not isinstance(user, DatabaseUser):
            return
        slot, user.slot = user.slot, None
        if not isinstance(slot, int):
            return
        try:
            async with asyncio.timeout(self.query_timeout):
                await self.slots.release(slot)
        except (Exception, asyncio.CancelledError) as exc:
            self.slots.retry_later(slot)
            if isinstance(exc, asyncio.CancelledError):
                raise
            logger.warning("session slot %s will be released later: %s", slot, exc)

    # -- internals ---------------------------------------------------------------------------
    async def _guarded(self, operation: Callable[[], Awaitable[T]], what: str) -> T:
        """Run a database operation; unreachable database -> UserSourceUnavailable."""
        try:
            if not self._ready:
                await self.connect()
            async with asyncio.timeout(self.query_timeout):
                result = await operation()
        except SchemaMismatch as exc:
            logger.error("%s", exc)
            raise UserSourceUnavailable(str(exc)) from exc
        except _UNAVAILABLE as exc:
            if not self._outage:
                self._outage = True
                logger.error(
                    "accounts database %s unreachable (%s): %s", safe_url(self.url), what, exc
                )
            raise UserSourceUnavailable("accounts database unavailable") from exc
        if self._outage:
            self._outage = False
            logger.warning("accounts database %s reachable again", safe_url(self.url))
        return result

    async def _account(self, login: str) -> Account | None:
        return await self.cache.get(
            login, lambda: self._guarded(lambda: self._load(login), "looking up a login")
        )

    async def _load(self, login: str) -> Account | None:
        query = (
            select(
                users,
                permissions.c.path,
                permissions.c.readable,
                permissions.c.writable,
                account_mounts.c.path.label("mount_path"),
                account_mounts.c.read_only.label("mount_read_only"),
                folders.c.name.label("folder_name"),
                folders.c.storage_root.label("folder_root"),
                folders.c.options.label("folder_options"),
            )
            .select_from(
                users.outerjoin(permissions, permissions.c.user_id == users.c.id)
                .outerjoin(account_mounts, account_mounts.c.user_id == users.c.id)
                .outerjoin(folders, folders.c.id == account_mounts.c.folder_id)
            )
            .where(users.c.login == login)
        )
        async with self.engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        if not rows:
            return None
        # one query for the account, its rules and its folders: a row per (rule, mount)
        rules = list({row.path: row for row in rows if row.path is not None}.values())
        mounts = list({row.mount_path: row for row in rows if row.mount_path is not None}.values())
        return account_from_rows(rows[0], rules, self.cache.peek(login), mounts)

    async def _take_slot(self, user: DatabaseUser) -> str | None:
        """Take a connection slot for the session; the refusal text when there is none."""
        limit = user.maximum_connections
        if limit is None:
            user.slot = _LOCAL_SLOT
            return None
        account_id = user.account_id
        assert account_id is not None
        slot = await self._guarded(
            lambda: self.slots.acquire(account_id, limit), "counting connections"
        )
        if slot is None:
            return f"too many connections for {user.login!r}"
        user.slot = slot
        return None

    async def _rehash(self, account: Account, stored: str, password: str) -> None:
        """Store a hash made with the current parameters; a failure only delays it."""
        new_hash = await self.hashing.hash_async(password)

        async def store() -> None:
            async with self.engine.begin() as connection:
                # only if nobody changed the password meanwhile
                await connection.execute(
                    update(users)
                    .where(users.c.id == account.id, users.c.password_hash == stored)
                    .values(password_hash=new_hash)
                )

        try:
            await self._guarded(store, "rehashing a password")
        except UserSourceUnavailable:
            return
        if account.password_hash == stored:
            account.password_hash = new_hash
        logger.info("password hash of %r upgraded to the current parameters", account.user.login)
