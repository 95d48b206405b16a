"""One session per control connection: its state as plain attributes.

Handlers receive the session as ``connection`` (aioftp's name).  aioftp kept this
state as a dict of futures; here it is ordinary attributes, with one event,
``state_changed``, for the single thing a handler waits on: a data connection
arriving.  Attribute names follow aioftp's so handlers written for aioftp work.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Mapping
from pathlib import PurePosixPath
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.server.core import Server

__all__ = ("Session",)

_ids = itertools.count(1)


class WorkerSet(set):
    """The session's background tasks (transfers); adding one tracks its end."""

    def __init__(self, session: Session) -> None:
        super().__init__()
        self._session = session

    def add(self, task: Any) -> None:  # type: ignore[override]
        super().add(task)
        if isinstance(task, asyncio.Future):
            task.add_done_callback(self._session._worker_done)


_SERVER_SETTINGS = frozenset(
    {
        "socket_timeout",
        "idle_timeout",
        "wait_future_timeout",
        "block_size",
        "path_timeout",
        "path_io_factory",
        "encoding",
    }
)


class Session:
    """State of one control connection (what aioftp handlers call ``connection``).

    Defaults live on the class and settings are read from the server until a
    handler assigns its own value, so an idle session costs only what differs:
    servers hold many idle sessions.
    """

    # login state
    user: Any = None
    logged = False
    acquired = False
    address_counted = False
    throttle_user: Any = None  # whose shared throttle this session holds
    current_directory = PurePosixPath("/")
    user_root_override: Any = None
    # transfer state
    transfer_type = "I"
    restart_offset = 0
    rename_from: Any = None
    passive_server: Any = None
    active_address: tuple[str, int] | None = None  # PORT/EPRT, used by the next transfer
    _data_connection: Any = None
    throttles: Mapping[str, Any] = MappingProxyType({})
    # TLS state
    tls = False
    implicit_tls = False
    pbsz: int | None = None
    data_protection = "C"
    # replies: ``response`` is synchronous (aioftp's contract) and may be called from
    # any task.  With the stock reply writers it writes to the transport at once;
    # when a subclass overrides ``write_response``/``write_line`` the replies are
    # queued and written, in order, by a task that awaits the override.
    _responses: deque[tuple[str, Any, bool]] | None = None
    _flush_task: asyncio.Task | None = None
    _state_changed: asyncio.Event | None = None
    closing = False
    timed_out = False
    watchdog: asyncio.TimerHandle | None = None
    login_started = 0.0
    last_activity = 0.0

    def __init__(
        self,
        server: Server,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        command_connection: Any,
    ) -> None:
        self.id = next(_ids)
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.reader = reader
        self.writer = writer
        self.command_connection = command_connection
        peer = writer.get_extra_info("peername") or ("", 0)
        sock = writer.get_extra_info("sockname") or ("", 0)
        self.client_host: str = peer[0]
        self.client_port: int = peer[1]
        self.server_host: str = sock[0]
        self.server_port: int = sock[1]
        self.extra_workers: WorkerSet = WorkerSet(self)
        self._direct_replies = server._stock_reply_writers
        if writer.get_extra_info("ssl_object") is not None:
            self.tls = self.implicit_tls = True
            self.data_protection = "P"

    def __getattr__(self, name: str) -> Any:
        # only reached when the attribute is not set: server-wide settings
        if name in _SERVER_SETTINGS:
            return getattr(self.server, name)
        if name == "path_io":  # before login: the server's default storage
            self.path_io = self.server.path_io_factory(timeout=self.server.path_timeout, connection=self)
            return self.path_io
        raise AttributeError(name)

    # -- data connection ---------------------------------------------------------
    @property
    def state_changed(self) -> asyncio.Event:
        """Set whenever a data connection arrives (or is refused)."""
        if self._state_changed is None:
            self._state_changed = asyncio.Event()
        return self._state_changed

    @property
    def data_connection(self) -> Any:
        return self._data_connection

    @data_connection.setter
    def data_connection(self, value: Any) -> None:
        self._data_connection = value
        self.state_changed.set()

    @data_connection.deleter
    def data_connection(self) -> None:
        self._data_connection = None

    # -- replies -----------------------------------------------------------------
    def response(self, code: str, info: Any = "", list: bool = False) -> None:  # noqa: A002
        """Send a reply; replies always reach the client in the order given."""
        code = str(code)
        if self._direct_replies and not self._responses:
            if self.writer.is_closing():
                return
            self.writer.write(self.server.encode_response(code, info, list, self.encoding))
            return
        if self._responses is None:
            self._responses = deque()
        self._responses.append((code, info, list))
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = self.loop.create_task(self._flush())

    async def _flush(self) -> None:
        responses = self._responses
        while responses:
            code, info, as_list = responses.popleft()
            try:
                await self.server.write_response(self.command_connection, code, info, as_list)
            except (ConnectionError, OSError, TimeoutError, RuntimeError):
                responses.clear()
                self.closing = True
                return
        self._flush_task = None

    async def flushed(self) -> None:
        """Wait until every reply so far has been handed to the kernel (backpressure)."""
        task = self._flush_task
        if task is not None and not task.done():
            await asyncio.shield(task)
        if self.writer.transport.get_write_buffer_size():
            await self.command_connection.write(b"")  # drain, bounded by the write timeout

    def _worker_done(self, task: asyncio.Future) -> None:
        self.extra_workers.discard(task)
        self.last_activity = self.loop.time()  # idle time counts from the transfer's end
        if not task.cancelled() and task.exception() is not None:
            self.server._report_worker_error(self, task.exception())

    # -- user-dependent helpers ------------------------------------------------------
    @property
    def user_root(self) -> Any:
        """The real path that is "/" for this session's user."""
        override = self.user_root_override
        return self.user.base_path if override is None else override

    def virtual_of(self, real_path: Any) -> PurePosixPath:
        """The virtual path a client sees for a real path under the user's root."""
        relative = real_path.relative_to(self.user_root)
        return PurePosixPath("/", *relative.parts)

    def data_throttles(self) -> dict[str, Any]:
        """Throttles that apply to this session's data connections (limited ones only)."""
        return {
            name: throttle
            for name, throttle in self.throttles.items()
            if throttle.read.limit or throttle.write.limit
        }

    @property
    def transfer_active(self) -> bool:
        return bool(self.extra_workers)

    def __repr__(self) -> str:
        return f"<Session {self.id} {self.client_host}:{self.client_port}>"
