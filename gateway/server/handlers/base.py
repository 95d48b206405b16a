"""What every handler group may use: the server's settings and a few shared steps.

``Server`` combines the handler groups (aioftp's extension point: subclass ``Server``
and add ``async def coll(self, connection, rest)``).  This base class declares, in one
place, everything a handler may read or call on the server, so no group reaches
into another's internals.
"""

from __future__ import annotations

import functools
import inspect
import sys
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import PurePosixPath
from typing import Any

from backends.errors import PathEscapesRoot, PathIOError
from gateway.protocol.commands import COMMANDS, CommandInfo
from gateway.protocol.hashes import Algorithm
from gateway.protocol.paths import is_within, resolve_virtual, virtual_to_real
from gateway.server.datachannel import PortPool
from gateway.server.events import Operation, ServerEvents
from gateway.server.preconditions import refusal, refusal_now
from gateway.server.quirks import DeviceQuirks
from gateway.server.session import Session
from gateway.server.writers import ActiveWriters
from gateway.throttle import StreamThrottle

__all__ = ("HandlerBase",)

Handler = Callable[["HandlerBase", Session, str], Awaitable[bool]]


def _checked(info: CommandInfo, handler: Handler) -> Handler:
    """``handler`` refusing first what the command table says it must refuse."""

    @functools.wraps(handler)
    async def checked(self: HandlerBase, connection: Session, rest: str) -> bool:
        if info.permission is None and not info.data:
            refused = refusal_now(connection, info, rest, require_tls=self.require_tls)
        else:
            refused = await refusal(
                connection, info, rest, require_tls=self.require_tls, get_paths=self.get_paths
            )
        if refused is not None:
            connection.response(*refused)
            return True
        return await handler(self, connection, rest)

    return checked


class HandlerBase:
    """Settings and shared steps of the server, as handlers see them.

    Each built-in command handler (a method named after its verb in the handler
    groups of ``gateway.server.handlers``) is wrapped, when its class is made, with
    the generic refusals its entry in the command table calls for
    (``preconditions.refusal``).  So the checks travel with the handler, as aioftp's
    decorators do: a subclass calling ``super().retr(...)`` gets them, and one that
    replaces a handler outright decides its own (aioftp's extension contract).
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__module__.startswith("gateway.server.handlers."):
            return
        for name, value in list(vars(cls).items()):
            info = COMMANDS.get(name[:-1] if name.endswith("_") else name)
            if info is not None and inspect.iscoroutinefunction(value):
                setattr(cls, name, _checked(info, value))

    # settings (set by Server.__init__)
    block_size: int
    socket_timeout: float | None
    tls_context: Any
    require_tls: bool
    tls_handshake_timeout: float
    max_password_length: int
    system_type: str
    ipv4_pasv_forced_response_address: str | None
    device_quirks: DeviceQuirks
    user_manager: Any
    events: ServerEvents
    path_io_factory: Any
    data_port_pool: PortPool
    commands_mapping: dict[str, Any]
    throttle: StreamThrottle
    throttle_per_connection: StreamThrottle
    throttle_per_user: dict[Any, StreamThrottle]
    roots_made: weakref.WeakSet[Any]
    active_writers: ActiveWriters
    #: algorithms an upload of a whole file is hashed with as it streams (none: off)
    upload_checksums: tuple[Algorithm, ...]
    #: the largest file (or range) HASH reads to compute a checksum not stored (None: any)
    hash_max_size: int | None

    # -- shared steps, defined by Server ------------------------------------------------
    def notify(self, event: str, *args: Any) -> None:
        raise NotImplementedError

    def operation(self, session: Session, kind: str, **fields: Any) -> Operation:
        """An :class:`Operation` of ``kind`` by ``session``'s user (fields: path...)."""
        raise NotImplementedError

    async def emit(self, session: Session, operation: Operation) -> None:
        """Await the durable listeners of ``operation`` (before its success reply)."""
        raise NotImplementedError

    async def upload_refusal(self, session: Session, virtual: Any, real: Any) -> tuple[str, str] | None:
        """The reply refusing an upload before it opens storage, or None."""
        raise NotImplementedError

    def fxp_allowed(self, session: Session) -> bool:
        """Whether the logged-in user may use data connections with other hosts."""
        raise NotImplementedError

    @staticmethod
    def get_paths(connection: Any, path: Any) -> tuple[Any, PurePosixPath]:
        """(real path, virtual path) for an argument; never outside the user's root.

        A static method, as aioftp's: it works on aioftp's ``Connection`` too (the
        root is then ``connection.user.base_path``)."""
        virtual = resolve_virtual(PurePosixPath(str(connection.current_directory)), str(path))
        if isinstance(connection, Session):
            root = connection.user_root
        else:
            root = connection.user.base_path
        return virtual_to_real(root, virtual), virtual

    async def resolve(self, connection: Session, argument: str) -> tuple[Any, PurePosixPath]:
        """(real, virtual) path of an argument, refusing symlinks that leave the root.

        ``get_paths`` keeps the *name* inside the root; this also asks storage where
        the name really leads, so a symlink to ``/etc`` gives 550 for every command.
        """
        real, virtual = self.get_paths(connection, argument)
        await self.ensure_confined(connection, real)
        return real, virtual

    async def ensure_confined(self, connection: Session, real: Any) -> None:
        login = connection.login
        if login.root_realpath is None:
            login.root_realpath = await connection.path_io.realpath(connection.user_root)
        resolved = await connection.path_io.realpath(real)
        if not is_within(login.root_realpath, resolved):
            try:
                raise PathEscapesRoot(str(real))
            except PathEscapesRoot:
                raise PathIOError("path outside root", reason=sys.exc_info()) from None

    async def allowed(self, connection: Session, virtual: PurePosixPath, right: str) -> bool:
        """Whether the user has ``right`` ("readable"/"writable") on ``virtual``."""
        permission = await connection.user.get_permissions(virtual)
        return bool(getattr(permission, right))

    async def end_login(self, connection: Session) -> None:
        """Forget who is logged in (USER again, REIN, AUTH before PASS)."""
        raise NotImplementedError

    def start_transfer(self, connection: Session, body: Any, code: str, info: str, record: Any = None) -> bool:
        """Run ``body(stream)`` as the session's transfer (``TransferCommands``)."""
        raise NotImplementedError

    async def listing_target(
        self, connection: Session, argument: str, globbing: bool
    ) -> tuple[Any, PurePosixPath, bool, str | None]:
        """What a LIST/STAT argument names (``ListingCommands``)."""
        raise NotImplementedError

    def listing_lines(
        self, connection: Session, real: Any, is_dir: bool, kind: str, pattern: str | None,
        virtual: PurePosixPath | None = None,
    ) -> AsyncIterator[str]:
        """A listing's lines (``ListingCommands``)."""
        raise NotImplementedError

    async def build_list_string(self, connection: Session, path: Any) -> str:
        """aioftp's hook: one LIST line (``Server``)."""
        raise NotImplementedError

    async def build_mlsx_string(self, connection: Session, path: Any) -> str:
        """aioftp's hook: one MLSD/MLST line (``Server``)."""
        raise NotImplementedError

    async def mlsx_line(
        self, connection: Session, path: Any, stats: Any, name: str | None,
        virtual: PurePosixPath | None = None,
    ) -> str:
        """An MLSD/MLST line from stats at hand (``Server``)."""
        raise NotImplementedError

    def _list_hooks_overridden(self) -> bool:
        raise NotImplementedError

    def storage_for_user(self, session: Session, user: Any) -> tuple[Any, Any]:
        """(path I/O, storage root) for a user (``Server``)."""
        raise NotImplementedError

    def hold_user_throttle(self, session: Session, user: Any) -> None:
        raise NotImplementedError

    def release_user_throttle(self, session: Session) -> None:
        raise NotImplementedError
