"""From validated settings to the objects that serve: TLS context, users, servers.

Nothing here listens or queries yet; what can fail on the outside world (a
certificate that does not load, a package that is missing) fails here with a
:class:`StartError` naming the setting, before any port is opened.
"""

from __future__ import annotations

import os
import secrets
import ssl
from pathlib import Path
from typing import Any

from backends.local import DurablePathIO, PathIO
from backends.mounts import Mount
from gateway.config.model import ListenerSettings, Settings, StaticUser, TlsSettings
from gateway.server.core import Server
from gateway.server.events import ServerEvents
from gateway.server.quirks import DeviceQuirks
from gateway.users import AbstractUserManager, MemoryUserManager, Permission, User

__all__ = (
    "StartError",
    "StaticUserManager",
    "build_servers",
    "build_user_manager",
    "static_user",
    "tls_context",
)


class StartError(RuntimeError):
    """The server cannot start; the message says what to fix."""


def tls_context(settings: TlsSettings) -> ssl.SSLContext | None:
    if settings.cert is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = (
        ssl.TLSVersion.TLSv1_3 if settings.min_version == "1.3" else ssl.TLSVersion.TLSv1_2
    )
    try:
        context.load_cert_chain(str(settings.cert), str(settings.key) if settings.key else None)
    except (OSError, ssl.SSLError) as exc:
        raise StartError(
            f"[tls] cert/key: cannot load {settings.cert}"
            + (f" with key {settings.key}" if settings.key else "")
            + f": {exc}"
        ) from None
    return context


class StaticUserManager(MemoryUserManager):
    """The users listed in the configuration file; passwords checked against argon2 hashes.

    As with database accounts, USER answers 331 to every login and an unknown one
    fails at PASS after the same argon2 work as a wrong password, so the replies do
    not tell which logins exist.  A login limiter slows down guessing addresses.
    """

    def __init__(
        self, users: list[User], *, login_limiter: Any = None, hashing: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(users, **kwargs)
        from gateway.users.database.hashing import PasswordHashing

        self.hashing = hashing if hashing is not None else PasswordHashing()
        self.login_limiter = login_limiter
        # stands in for unknown logins: a real hash of a password nobody knows
        self._nobody = User("\x00unknown", self.hashing.hash(secrets.token_hex(16)),
                            permissions=[Permission("/", readable=False, writable=False)])

    async def get_user(self, login: str) -> tuple[Any, User | None, str]:
        if self._find(login) is None:
            return self.GetUserResponse.PASSWORD_REQUIRED, self._nobody, "password required"
        return await super().get_user(login)

    async def authenticate(self, user: User, password: str) -> bool:
        if user.password is None:  # anonymous: any password (by convention, an e-mail)
            return True
        ok = await self.hashing.verify_async(user.password, password)
        return ok and user is not self._nobody


def static_user(settings: Settings, entry: StaticUser) -> User:
    """The ``User`` for a [[users.static]] entry; a missing local root is created."""
    root = entry.root or f"{settings.storage.root.rstrip('/')}/{entry.login}"
    if "://" not in root:
        root_path = Path(root)
        if not root_path.exists():
            root_path.mkdir(parents=True)
            if settings.run_as is not None:
                # made by root before the switch: hand it to the account that serves it
                from gateway.service.privileges import account_ids

                os.chown(root_path, *account_ids(*settings.run_as))
        base: str | Path = root_path.resolve()
    else:
        base = root
    permissions = [Permission(p.path, readable=p.readable, writable=p.writable) for p in entry.permissions]
    return User(
        entry.login,
        entry.password_hash,
        base_path=base,
        home_path=entry.home,
        encoding=entry.encoding,
        permissions=permissions or None,
        maximum_connections=entry.max_connections,
        read_speed_limit=entry.read_speed_limit,
        write_speed_limit=entry.write_speed_limit,
        read_speed_limit_per_connection=entry.read_speed_limit_per_connection,
        write_speed_limit_per_connection=entry.write_speed_limit_per_connection,
        allow_from=entry.allow_from,
        deny_from=entry.deny_from,
        allow_names=entry.allow_names,
        deny_names=entry.deny_names,
        hide_denied=entry.hide_denied,
        names_case_sensitive=entry.names_case_sensitive,
        max_file_size=entry.max_file_size,
        mounts=_static_mounts(settings, entry),
        max_bytes=entry.max_bytes,
        max_files=entry.max_files,
        upload_per_day=entry.upload_per_day,
        upload_per_month=entry.upload_per_month,
        download_per_day=entry.download_per_day,
        download_per_month=entry.download_per_month,
    )


def _static_mounts(settings: Settings, entry: StaticUser) -> list[Mount]:
    """The [[folders]] a static user mounts (the loader checked the names)."""
    folders = {folder.name: folder for folder in settings.folders}
    return [
        Mount(m.path, m.folder, folders[m.folder].root, folders[m.folder].options,
              folders[m.folder].read_only if m.read_only is None else m.read_only)
        for m in entry.mounts
    ]


def build_user_manager(settings: Settings) -> AbstractUserManager:
    users = settings.users
    from gateway.users.database import LimiterSettings, LoginLimiter
    from gateway.users.database.hashing import HashPool, PasswordHashing

    limiter = LoginLimiter(LimiterSettings(
        base_delay=users.failure_delay,
        max_delay=max(users.failure_delay_max, users.failure_delay),
        ban_after=users.ban_after,
        ban_duration=users.ban_duration,
        ban_prefix_ipv4=users.ban_prefix_ipv4,
        ban_prefix_ipv6=users.ban_prefix_ipv6,
        account_lock_after=users.account_lock_after,
        account_lock_duration=users.account_lock_duration,
    ))
    hashing = PasswordHashing(pool=HashPool(users.hash_workers, users.hash_queue))
    if users.source == "static":
        return StaticUserManager(
            [static_user(settings, entry) for entry in users.static], login_limiter=limiter,
            hashing=hashing,
        )
    from gateway.users.database import DatabaseUserManager

    db = users.database
    try:
        return DatabaseUserManager(
            db.url, cache_ttl=db.cache_ttl, query_timeout=db.query_timeout, login_limiter=limiter,
            hashing=hashing,
            heartbeat_interval=db.heartbeat_interval, stale_after=db.stale_after,
        )
    except Exception as exc:  # a URL SQLAlchemy cannot use, a driver not installed
        from gateway.users.database.diagnose import explain

        raise StartError(f"[users.database] url: {explain(exc, db.url)}") from None


def _server_kwargs(settings: Settings, listener: ListenerSettings,
                   context: ssl.SSLContext | None) -> dict[str, Any]:
    limits = settings.limits
    mode = listener.tls
    if mode == "auto":
        mode = "explicit" if context is not None else "none"
    require = listener.require_tls if listener.require_tls is not None else settings.tls.require
    fxp: bool | frozenset[str] = False
    if "*" in settings.allow_fxp:
        fxp = True
    elif settings.allow_fxp:
        fxp = frozenset(settings.allow_fxp)
    return {
        "socket_timeout": limits.socket_timeout,
        "idle_timeout": limits.idle_timeout,
        "login_timeout": limits.login_timeout,
        "path_timeout": limits.storage_timeout,
        "maximum_connections": limits.max_connections,
        "maximum_connections_per_address": limits.max_connections_per_address,
        "read_speed_limit": limits.read_speed_limit,
        "write_speed_limit": limits.write_speed_limit,
        "read_speed_limit_per_connection": limits.read_speed_limit_per_connection,
        "write_speed_limit_per_connection": limits.write_speed_limit_per_connection,
        "max_line_length": limits.max_line_length,
        "ipv4_pasv_forced_response_address": settings.passive.address,
        "data_ports": settings.passive.ports,
        "passive_listen_timeout": settings.passive.listen_timeout,
        "data_tls_handshake_timeout": settings.tls.data_handshake_timeout,
        "ssl": context if mode == "implicit" else None,
        "tls_context": context if mode in ("explicit", "implicit") else None,
        "require_tls": bool(require) and mode == "explicit",
        "require_tls_session_reuse": settings.tls.require_session_reuse,
        "welcome_message": settings.welcome_message,
        "encoding": listener.encoding,
        "storage_options": dict(settings.storage.options) or None,
        "path_io_factory": DurablePathIO if settings.storage.fsync else PathIO,
        "upload_checksums": settings.storage.upload_checksums,
        "hash_max_size": limits.hash_max_size,
        "allow_fxp": fxp,
        "strict_rfc": settings.strict_rfc,
        "device_quirks": DeviceQuirks.from_names(settings.device_quirks),
        "allow_from": settings.allow_from,
        "deny_from": settings.deny_from,
        "proxy_protocol": listener.proxy_protocol,
        "proxy_trusted": listener.proxy_trusted,
    }


def build_servers(
    settings: Settings, manager: AbstractUserManager, events: ServerEvents
) -> list[tuple[Server, ListenerSettings]]:
    """One server per listener, all sharing the user manager and the event listeners."""
    context = tls_context(settings.tls)
    return [
        (Server(manager, events=events, **_server_kwargs(settings, listener, context)), listener)
        for listener in settings.listeners
    ]
