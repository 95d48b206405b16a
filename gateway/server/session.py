"""One session per control connection, and all of its state, declared here.

A session owns three things:

* the connection itself (addresses, streams, TLS on the control connection, the
  timers, the running transfers, the replies), fixed for its lifetime;
* a :class:`LoginState`: who is logged in and everything that follows from it (storage,
  throttles, current directory, TYPE, REST offset, RNFR source, encoding, MLST
  facts).  REIN replaces it with a fresh one, so nothing is forgotten;
* a :class:`~gateway.server.datachannel.DataChannel`: passive/active mode, PROT and
  the data connection.

Handlers receive the session as ``connection`` (aioftp's name).  The attribute names
aioftp handlers use (``connection.user``, ``current_directory``, ``data_connection``,
``passive_server``, ``extra_workers``...) are kept as views onto those objects.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from types import MappingProxyType
from typing import Any, Generic, TypeVar, overload

from backends.errors import PathIOError
from gateway.protocol.commands import encode_text
from gateway.protocol.hashes import DEFAULT_ALGORITHM, Algorithm
from gateway.protocol.replies import one_line
from gateway.server.datachannel import DataChannel
from gateway.server.storage_errors import reply_for_storage_error
from gateway.streams import StreamIO, ThrottleStreamIO
from gateway.throttle import StreamThrottle

__all__ = ("LoginState", "Session", "SessionSettings")

logger = logging.getLogger("gateway.server")

_ids = itertools.count(1)
#: Reply bytes gathered before one write when a reply is streamed (STAT of a directory).
_REPLY_BATCH = 64 * 1024
_NO_THROTTLES: Mapping[str, StreamThrottle] = MappingProxyType({})
_ROOT = PurePosixPath("/")

T = TypeVar("T")

#: Writes one reply through a ``Server.write_response`` a subclass overrides.
ReplyWriter = Callable[[StreamIO, str, Any, bool], Awaitable[None]]
#: Formats one reply as bytes: (code, lines, as_list, encoding).
ReplyEncoder = Callable[[str, Any, bool, str], bytes]


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """The server settings a session reads (aioftp exposed them on the connection)."""

    path_io_factory: Any
    encoding: str = "utf-8"
    socket_timeout: float | None = None
    idle_timeout: float | None = None
    login_timeout: float | None = None
    wait_future_timeout: float | None = 1.0
    path_timeout: float | None = None
    block_size: int = 8192
    #: the RFCs' replies where aioftp's differ (``Server(strict_rfc=...)``)
    strict_rfc: bool = False


@dataclass(slots=True, eq=False)
class LoginState:
    """What one login owns; REIN and a new USER start from a fresh one."""

    encoding: str
    user: Any = None
    logged: bool = False
    #: the name the client sent with USER (for logs and events; may not exist)
    login_name: str | None = None
    #: storage for this user (None before login: the server's default storage)
    path_io: Any = None
    #: the real path that is "/" for a URL-rooted user (None: ``user.base_path``)
    storage_root: Any = None
    #: the root as storage resolves it (symlinks followed), for confinement checks
    root_realpath: Any = None
    throttles: Mapping[str, StreamThrottle] = field(default_factory=lambda: _NO_THROTTLES)
    #: the user whose shared throttle this session counts as holding
    throttle_user: Any = None
    current_directory: PurePosixPath = _ROOT
    transfer_type: str = "I"
    restart_offset: int = 0
    #: the size ALLO announced, checked by the next upload against the account's
    #: largest file (None: nothing announced)
    allocated: int | None = None
    #: RNFR source (real path, virtual path), waiting for RNTO
    rename_from: Any = None
    rename_from_virtual: PurePosixPath | None = None
    #: OPTS UTF8 ON was sent
    utf8_forced: bool = False
    #: OPTS MLST facts (None: the default facts)
    mlst_facts: tuple[str, ...] | None = None
    #: HOST name given before USER
    virtual_host: str | None = None
    #: the algorithm HASH uses (OPTS HASH)
    hash_algorithm: Algorithm = DEFAULT_ALGORITHM
    #: a RANG selection (first, last byte) for the next HASH
    byte_range: tuple[int, int] | None = None

    def forget_user(self) -> None:
        """USER again, or AUTH before PASS: the account and what follows from it go
        back to their initial values; the client's own choices (TYPE, OPTS, HOST) stay."""
        for name in _USER_FIELDS:
            setattr(self, name, _INITIAL[name])


#: The LoginState fields that come from the account (reset by ``forget_user``).
_USER_FIELDS = (
    "user", "logged", "login_name", "path_io", "storage_root", "root_realpath",
    "throttles", "throttle_user", "rename_from", "rename_from_virtual", "restart_offset",
    "allocated",
)  # fmt: skip
_INITIAL = {name: getattr(LoginState(encoding=""), name) for name in _USER_FIELDS}


class _InLogin(Generic[T]):
    """A session attribute kept in its :class:`LoginState` (aioftp's flat names)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> _InLogin[T]: ...
    @overload
    def __get__(self, obj: Session, owner: type | None = None) -> T: ...
    def __get__(self, obj: Session | None, owner: type | None = None) -> T | _InLogin[T]:
        if obj is None:
            return self
        value: T = getattr(obj.login, self._name)
        return value

    def __set__(self, obj: Session, value: T) -> None:
        setattr(obj.login, self._name, value)


class WorkerSet(set[asyncio.Task[Any]]):
    """The session's background tasks (transfers); adding one tracks its end."""

    def __init__(self, on_done: Callable[[asyncio.Task[Any]], None]) -> None:
        super().__init__()
        self._on_done: Callable[[asyncio.Task[Any]], None] | None = on_done

    def add(self, task: asyncio.Task[Any]) -> None:
        super().add(task)
        if self._on_done is not None:
            task.add_done_callback(self._on_done)

    def detach(self) -> None:
        """The session is gone: drop the link back to it (no reference cycle left
        for the garbage collector to find)."""
        self._on_done = None


class Session:
    """State of one control connection (what aioftp handlers call ``connection``)."""

    # views onto the login state, under the names aioftp handlers use
    user: _InLogin[Any] = _InLogin()
    logged: _InLogin[bool] = _InLogin()
    throttles: _InLogin[Mapping[str, StreamThrottle]] = _InLogin()
    current_directory: _InLogin[PurePosixPath] = _InLogin()
    transfer_type: _InLogin[str] = _InLogin()
    restart_offset: _InLogin[int] = _InLogin()
    rename_from: _InLogin[Any] = _InLogin()
    encoding: _InLogin[str] = _InLogin()

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        command_connection: StreamIO,
        *,
        settings: SessionSettings,
        data: Callable[[Session], DataChannel],
        encode_reply: ReplyEncoder,
        write_reply: ReplyWriter | None = None,
        client: tuple[str, int] | None = None,
    ) -> None:
        self.id = next(_ids)
        self.loop = asyncio.get_running_loop()
        self.reader = reader
        self.writer = writer
        self.command_connection = command_connection
        self.settings = settings
        peer = writer.get_extra_info("peername") or ("", 0)
        sock = writer.get_extra_info("sockname") or ("", 0)
        #: the TCP peer: the client, or the load balancer relaying it
        self.peer_host: str = peer[0]
        self.peer_port: int = peer[1]
        # the client, as everything that judges or records it sees it (logs, bans,
        # limits, network rules, the passive-connection check): ``client`` when a
        # trusted balancer named it in a PROXY header, else the peer
        client_host, client_port = client if client is not None else (peer[0], peer[1])
        self.client_host: str = client_host
        self.client_port: int = client_port
        #: the balancer's address when the client's came from its PROXY header
        self.relayed_by: str | None = peer[0] if client is not None else None
        self.server_host: str = sock[0]
        self.server_port: int = sock[1]
        # TLS on the control connection
        self.implicit_tls = writer.get_extra_info("ssl_object") is not None
        self.tls = self.implicit_tls
        self.login = LoginState(encoding=settings.encoding)
        # made on first use: a session that only logs in never needs one
        self._data: DataChannel | None = None
        self._make_data = data
        self._fxp_allowed = False
        self.extra_workers = WorkerSet(self._worker_done)
        # accounting the server does for this session (given back when it closes)
        self.acquired = False
        self.address_counted = False
        # life cycle
        self.closing = False
        self.timed_out = False
        self.watchdog: asyncio.TimerHandle | None = None
        self.login_started = 0.0
        self.last_activity = 0.0
        # replies: ``response`` is synchronous (aioftp's contract) and may be called
        # from any task.  With the stock reply writers it writes to the transport at
        # once; when a subclass overrides ``write_response`` the replies are queued
        # and written, in order, by a task that awaits the override.
        self._encode_reply = encode_reply
        self._write_reply = write_reply
        self._responses: deque[tuple[str, Any, bool]] = deque()
        self._flush_task: asyncio.Task[None] | None = None

    def release(self) -> None:
        """The session is closed: drop what links back to it (storage holds its
        session, the worker set its callback), so it is freed at once rather than by
        the cycle collector."""
        self.extra_workers.detach()
        self.login.path_io = None

    @property
    def data(self) -> DataChannel:
        """This session's data channel (PASV/PORT, PROT, the data connection)."""
        channel = self._data
        if channel is None:
            channel = self._data = self._make_data(self)
            channel.throttles = self.login.throttles
            channel.fxp_allowed = self._fxp_allowed
        return channel

    def login_changed(self, fxp_allowed: bool) -> None:
        """A login began or ended: the data channel follows its throttles and FXP right."""
        self._fxp_allowed = fxp_allowed
        if self._data is not None:
            self._data.throttles = self.login.throttles
            self._data.fxp_allowed = fxp_allowed

    async def close_data(self) -> None:
        """Close the data channel, if one was ever made."""
        if self._data is not None:
            await self._data.close()

    def new_login(self) -> None:
        """Forget the login: a fresh :class:`LoginState` (REIN, USER again)."""
        self.login = LoginState(encoding=self.settings.encoding)

    # -- settings under aioftp's names ---------------------------------------------------
    @property
    def socket_timeout(self) -> float | None:
        return self.settings.socket_timeout

    @property
    def idle_timeout(self) -> float | None:
        return self.settings.idle_timeout

    @property
    def wait_future_timeout(self) -> float | None:
        return self.settings.wait_future_timeout

    @property
    def path_timeout(self) -> float | None:
        return self.settings.path_timeout

    @property
    def block_size(self) -> int:
        return self.settings.block_size

    @property
    def path_io_factory(self) -> Any:
        return self.settings.path_io_factory

    @property
    def path_io(self) -> Any:
        """This session's path I/O: the user's storage, or before login the server's."""
        path_io = self.login.path_io
        if path_io is None:
            path_io = self.login.path_io = self.settings.path_io_factory(
                timeout=self.settings.path_timeout, connection=self
            )
        return path_io

    @path_io.setter
    def path_io(self, value: Any) -> None:
        self.login.path_io = value

    # -- the data channel under aioftp's names ------------------------------------------------
    @property
    def passive_server(self) -> asyncio.base_events.Server | None:
        return self.data.listener_server

    @property
    def data_connection(self) -> ThrottleStreamIO | None:
        return self.data.connection

    @data_connection.setter
    def data_connection(self, value: ThrottleStreamIO | None) -> None:
        self.data.set_connection(value)

    @data_connection.deleter
    def data_connection(self) -> None:
        self.data.take_connection()

    @property
    def state_changed(self) -> asyncio.Event:
        """Set whenever a data connection arrives (or is refused)."""
        return self.data.changed

    @property
    def data_protection(self) -> str:
        return self.data.protection

    @property
    def active_address(self) -> tuple[str, int] | None:
        return self.data.active_address

    # -- replies -----------------------------------------------------------------------
    def response(self, code: str, info: Any = "", list: bool = False) -> None:  # noqa: A002
        """Send a reply; replies always reach the client in the order given."""
        code = str(code)
        if self._write_reply is None and not self._responses:
            if self.writer.is_closing():
                return
            self.writer.write(self._encode_reply(code, info, list, self.login.encoding))
            return
        self._responses.append((code, info, list))
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = self.loop.create_task(self._flush())

    async def _flush(self) -> None:
        responses = self._responses
        while responses:
            code, info, as_list = responses.popleft()
            try:
                if self._write_reply is None:
                    self.writer.write(self._encode_reply(code, info, as_list, self.login.encoding))
                else:
                    await self._write_reply(self.command_connection, code, info, as_list)
            except (ConnectionError, OSError, TimeoutError, RuntimeError):
                responses.clear()
                self.closing = True
                return
        self._flush_task = None

    async def stream_reply(
        self, code: str, head: str, lines: AsyncIterator[str], tail: str
    ) -> None:
        """A multi-line reply whose middle lines come from ``lines``, written as they
        come in bounded batches (a STAT of a huge directory never sits whole in
        memory, and the client's reading paces it).  With a subclass's own reply
        writer the reply is gathered and handed to it whole."""
        if self._write_reply is not None or self._responses:
            gathered = [head]
            async for line in lines:
                gathered.append(line)
            gathered.append(tail)
            self.response(code, gathered, True)
            return
        encoding = self.login.encoding
        batch = [f"{code}-{one_line(head)}\r\n"]
        size = 0
        async for line in lines:
            text = f" {one_line(line)}\r\n"
            batch.append(text)
            size += len(text)
            if size >= _REPLY_BATCH:
                self.writer.write(encode_text("".join(batch), encoding))
                batch.clear()
                size = 0
                await self.flushed()
        batch.append(f"{code} {one_line(tail)}\r\n")
        self.writer.write(encode_text("".join(batch), encoding))

    async def flushed(self) -> None:
        """Wait until every reply so far has been handed to the kernel (backpressure)."""
        task = self._flush_task
        if task is not None and not task.done():
            await asyncio.shield(task)
        if self.writer.transport.get_write_buffer_size():
            await self.command_connection.write(b"")  # drain, bounded by the write timeout

    # -- transfers -----------------------------------------------------------------------------
    def _worker_done(self, task: asyncio.Task[Any]) -> None:
        self.extra_workers.discard(task)
        self.last_activity = self.loop.time()  # idle time counts from the transfer's end
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        if isinstance(exc, PathIOError):
            self.response(*reply_for_storage_error(exc))
        elif isinstance(exc, (ConnectionError, OSError, TimeoutError)):
            self.response("426", "connection closed; transfer aborted")
        else:
            logger.error("session %s: transfer failed", self.id, exc_info=exc)
            self.response("451", "requested action aborted: local error in processing")

    # -- the user's storage ------------------------------------------------------------------
    @property
    def user_root(self) -> Any:
        """The real path that is "/" for this session's user."""
        root = self.login.storage_root
        return self.login.user.base_path if root is None else root

    def virtual_of(self, real_path: Any) -> PurePosixPath:
        """The virtual path a client sees for a real path under the user's root."""
        relative = real_path.relative_to(self.user_root)
        return PurePosixPath("/", *relative.parts)

    def __repr__(self) -> str:
        return f"<Session {self.id} {self.client_host}:{self.client_port}>"
