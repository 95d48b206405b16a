"""The FTP server: listener, the per-connection command loop, shared settings.

Command handlers live in ``gateway.server.handlers`` as mixins grouped by concern;
``Server`` combines them so subclasses override or add commands exactly as with
aioftp (``async def coll(self, connection, rest)``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl as ssl_module
import stat as stat_module
import time
import weakref
from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import Any

from backends import PathIO, PathIONursery
from backends.errors import PathIOError
from backends.mounts import shared_table
from backends.registry import backend_for_root
from gateway.common import END_OF_LINE, AvailableConnections
from gateway.protocol.commands import (
    COMMANDS,
    MAX_LINE_LENGTH,
    decode_line,
    encode_text,
    is_verb,
    parse_command,
    strip_telnet,
)
from gateway.protocol.listing import (
    DEFAULT_MLSX_FACTS,
    format_list_date,
    format_list_line,
    format_mlsx_line,
    mlsx_perm,
    stat_mode,
)
from gateway.protocol.replies import format_reply
from gateway.server.accounting import KeyCounts
from gateway.server.datachannel import DataChannel, DataChannelSettings, PortPool
from gateway.server.events import Operation, ServerEvents, UploadRefused
from gateway.server.handlers import (
    DataPortCommands,
    FileCommands,
    HashCommands,
    ListingCommands,
    LoginCommands,
    MiscCommands,
    NavigationCommands,
    SiteCommands,
    StatusCommands,
    TlsCommands,
    TransferCommands,
)
from gateway.server.handlers.hashes import range_refusal
from gateway.server.hashing import upload_algorithms
from gateway.server.proxied import DEFAULT_HEADER_TIMEOUT, Origin, ProxiedListener, ProxyPolicy
from gateway.server.quirks import DeviceQuirks
from gateway.server.session import Session, SessionSettings
from gateway.server.shutdown import shutdown_gracefully
from gateway.server.storage_errors import reply_for_storage_error
from gateway.server.watchdog import arm_watchdog, stop_watchdog
from gateway.server.writers import ActiveWriters
from gateway.streams import DEFAULT_BLOCK_SIZE, StreamIO
from gateway.throttle import StreamThrottle
from gateway.users import AbstractUserManager, MemoryUserManager
from gateway.users.addresses import AddressRules

__all__ = ("Server", "DEFAULT_IDLE_TIMEOUT", "DEFAULT_LOGIN_TIMEOUT")

logger = logging.getLogger("gateway.server")

#: Seconds a logged-in client may stay silent.  aioftp waits forever; a production
#: server should not keep dead sessions, so the default is finite (``None`` disables).
DEFAULT_IDLE_TIMEOUT = 900.0
#: Seconds a client has from connecting to completing its login.
DEFAULT_LOGIN_TIMEOUT = 60.0
#: Passwords longer than this are refused before any hashing work is done.
MAX_PASSWORD_LENGTH = 1024
#: Listen backlog: room for a burst of clients connecting at once.
DEFAULT_BACKLOG = 1024
#: Seconds a data connection may stall (no byte moving) when ``socket_timeout`` is
#: not given: a peer that stops reading or sending must not hold a session forever.
DEFAULT_DATA_TIMEOUT = 300.0
#: Seconds a PROT P data connection has to finish its TLS handshake: well above
#: real round trips (a loaded server, a satellite link), bounded by the data timeout.
DEFAULT_DATA_TLS_HANDSHAKE_TIMEOUT = 15.0
#: Seconds a passive listener waits for the transfer it was opened for.
DEFAULT_PASSIVE_LISTEN_TIMEOUT = 60.0
#: The 421 instead of a greeting for a client address the server does not serve.
ADDRESS_REFUSED_TEXT = "service not available for your address"

class Server(
    LoginCommands,
    NavigationCommands,
    FileCommands,
    ListingCommands,
    TransferCommands,
    DataPortCommands,
    TlsCommands,
    MiscCommands,
    SiteCommands,
    StatusCommands,
    HashCommands,
):
    """FTP server (aioftp's ``Server``; extra keyword options are ours).

    ``ssl`` enables implicit TLS on every accepted connection, as in aioftp.
    ``tls_context`` enables explicit FTPS (AUTH TLS, RFC 4217); it defaults to
    ``ssl`` when that is given.  ``require_tls`` refuses login and data transfers
    on a control connection that is not protected.  ``require_tls_session_reuse``
    answers 522 to a protected data connection that does not resume the control
    connection's TLS session.

    ``strict_rfc`` chooses between aioftp's replies (False, the default, so code
    written for aioftp sees what it expects) and the stricter replies of the RFCs
    (True, what ``gateway serve`` uses) where the two differ only in the reply:

    * PBSZ and PROT on a clear control connection (no AUTH TLS, no implicit TLS):
      aioftp accepts them (200) and nothing changes: data connections stay clear,
      and the reply says so.  Strict: 503, as RFC 4217 makes them meaningful only on
      a protected control connection.  PBSZ without an argument (or, after AUTH
      TLS, not a number), PROT before PBSZ after AUTH TLS: 200 as aioftp, 501/503
      strict.  PROT of a level other than P
      or C: 502 as aioftp, 536 (S, E) or 504 strict.
    * No free passive port (``data_ports`` all taken or busy): 421 as aioftp, 425
      strict (RFC 959's 421 announces that the control connection closes; a full
      pool is a data-connection failure the client may retry).  Either way the
      session goes on.

    ``allow_from`` / ``deny_from`` (CIDR strings, IPv4 or IPv6) say which client
    addresses may connect at all; a denied network wins, an empty allow list allows
    all.  A refused client gets ``421`` instead of the greeting and is disconnected.

    ``proxy_protocol`` ("off", "v1", "v2" or "any") makes the listener read the
    PROXY protocol header a load balancer sends, from the balancers in
    ``proxy_trusted`` (CIDR strings), before the greeting (and before the TLS
    handshake with ``ssl``) and on passive data connections; the client it names is
    the session's ``client_host`` (see ``gateway.server.proxied``).
    """

    def __init__(
        self,
        users: Any = None,
        *,
        block_size: int = DEFAULT_BLOCK_SIZE,
        socket_timeout: float | None = None,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        wait_future_timeout: float | None = 1,
        path_timeout: float | None = None,
        path_io_factory: Any = PathIO,
        maximum_connections: int | None = None,
        read_speed_limit: int | None = None,
        write_speed_limit: int | None = None,
        read_speed_limit_per_connection: int | None = None,
        write_speed_limit_per_connection: int | None = None,
        ipv4_pasv_forced_response_address: str | None = None,
        data_ports: Iterable[int] | None = None,
        encoding: str = "utf-8",
        ssl: ssl_module.SSLContext | None = None,
        welcome_message: str = "welcome",
        system_type: str = "UNIX Type: L8",
        login_timeout: float | None = DEFAULT_LOGIN_TIMEOUT,
        tls_context: ssl_module.SSLContext | None = None,
        require_tls: bool = False,
        require_tls_session_reuse: bool = False,
        tls_handshake_timeout: float = 30.0,
        max_line_length: int = MAX_LINE_LENGTH,
        max_password_length: int = MAX_PASSWORD_LENGTH,
        backlog: int = DEFAULT_BACKLOG,
        storage_options: dict[str, Any] | None = None,
        allow_fxp: bool | Iterable[str] = False,
        device_quirks: DeviceQuirks | None = None,
        events: ServerEvents | None = None,
        maximum_connections_per_address: int | None = None,
        data_timeout: float | None = DEFAULT_DATA_TIMEOUT,
        data_tls_handshake_timeout: float = DEFAULT_DATA_TLS_HANDSHAKE_TIMEOUT,
        passive_listen_timeout: float | None = DEFAULT_PASSIVE_LISTEN_TIMEOUT,
        strict_rfc: bool = False,
        upload_checksums: bool | Iterable[str] = True,
        hash_max_size: int | None = None,
        allow_from: Iterable[str] | None = None,
        deny_from: Iterable[str] | None = None,
        proxy_protocol: str = "off",
        proxy_trusted: Iterable[str] | None = None,
        proxy_header_timeout: float = DEFAULT_HEADER_TIMEOUT,
    ) -> None:
        self.block_size = block_size
        self.socket_timeout = socket_timeout
        self.idle_timeout = idle_timeout
        self.wait_future_timeout = wait_future_timeout
        self.path_timeout = path_timeout
        self.path_io_factory = PathIONursery(path_io_factory)
        self.ipv4_pasv_forced_response_address = ipv4_pasv_forced_response_address
        self.data_ports = data_ports
        self.data_port_pool = PortPool(data_ports)
        self.encoding = encoding
        self.ssl = ssl
        self.tls_context = tls_context or ssl
        self.require_tls = require_tls
        self.require_tls_session_reuse = require_tls_session_reuse
        self.tls_handshake_timeout = tls_handshake_timeout
        #: data connections stalled this long are dropped (``socket_timeout`` wins)
        self.data_timeout = data_timeout
        self.data_tls_handshake_timeout = data_tls_handshake_timeout
        self.passive_listen_timeout = passive_listen_timeout
        #: the RFCs' replies where aioftp's differ (see the class docstring)
        self.strict_rfc = strict_rfc
        #: algorithms a whole-file upload is hashed with as it streams, stored with
        #: the file for HASH/XCRC (True: SHA-256; False: none)
        self.upload_checksums = upload_algorithms(upload_checksums)
        #: the most HASH/XCRC... read to compute a checksum not stored (556 beyond)
        self.hash_max_size = hash_max_size
        self.welcome_message = welcome_message
        self.system_type = system_type
        self.login_timeout = login_timeout
        self.max_line_length = max_line_length
        self.max_password_length = max_password_length
        self.backlog = backlog
        if isinstance(users, AbstractUserManager):
            self.user_manager = users
        else:
            self.user_manager = MemoryUserManager(users)
        self.available_connections = AvailableConnections(maximum_connections)
        #: Control connections one client address may hold at once (None: no limit).
        self.maximum_connections_per_address = maximum_connections_per_address
        self._per_address = KeyCounts()
        #: Client networks that may connect at all (checked before the greeting).
        self.address_rules = AddressRules.parse(allow_from, deny_from)
        #: Load balancers whose PROXY header names the client (None: no header read).
        self.proxy_policy = ProxyPolicy.create(proxy_protocol, proxy_trusted, proxy_header_timeout)
        self._proxied: ProxiedListener | None = None
        self.throttle = StreamThrottle.from_limits(read_speed_limit, write_speed_limit)
        self.throttle_per_connection = StreamThrottle.from_limits(
            read_speed_limit_per_connection, write_speed_limit_per_connection
        )
        self.throttle_per_user: dict[Any, StreamThrottle] = {}
        #: sessions using each entry of throttle_per_user; the last one out removes it,
        #: so accounts that change or go away do not accumulate
        self._throttle_holders = KeyCounts()
        self.sessions: dict[asyncio.Task[None], Session] = {}
        self.server: asyncio.base_events.Server | None = None
        self.server_host: str | None = None
        #: sessions inherit SO_OOBINLINE from the listening sockets (set by start())
        self._oob_inherited = False
        self._settings_cache: tuple[tuple[Any, ...], SessionSettings, DataChannelSettings] | None = None
        #: files with an upload in progress, server-wide (one writer per file)
        self.active_writers = ActiveWriters()
        #: users whose local root is known to exist (checked at their first login)
        self.roots_made: weakref.WeakSet[Any] = weakref.WeakSet()
        self.server_port: int | None = None
        self._root_backends: dict[str, tuple[Any, Any]] = {}
        #: Given to URL-rooted backends (``s3://``): endpoint, credentials, part size...
        self.storage_options = storage_options
        #: PORT/EPRT to (and passive connections from) other hosts: True for everyone,
        #: or the logins allowed site-to-site transfers (FXP); off by default (RFC 2577).
        self.allow_fxp = allow_fxp if isinstance(allow_fxp, bool) else frozenset(allow_fxp)
        #: Replies old devices need (``gateway.server.quirks``); standard ones by default.
        self.device_quirks = device_quirks or DeviceQuirks()
        #: Listener for sessions, logins and transfers (logs, xferlog, metrics).
        self.events = events if events is not None else ServerEvents()
        #: Set by shutdown(): sessions finish their transfer, then get 421.
        self.shutting_down = False
        self.commands_mapping = self._build_commands_mapping()

    # -- aioftp-compatible attributes ---------------------------------------------
    @property
    def connections(self) -> dict[asyncio.Task[None], Session]:
        """Live sessions keyed by their task (aioftp exposed its connections)."""
        return self.sessions

    @property
    def address(self) -> tuple[str | None, int | None]:
        """(host, port) the server listens on (aioftp's ``Server.address``)."""
        return self.server_host, self.server_port

    @property
    def available_data_ports(self) -> PortPool | None:
        """The free passive ports (``qsize()`` counts them), or None when any port
        will do (no ``data_ports``): aioftp's queue of data ports."""
        return self.data_port_pool if self.data_ports is not None else None

    @staticmethod
    def build_list_mtime(st_mtime: float, now: float | None = None) -> str:
        """The date column of a LIST line (``Jan  1 00:00`` or ``Jan  1  2001``),
        as aioftp's ``Server.build_list_mtime``."""
        return format_list_date(st_mtime, time.time() if now is None else now)

    def _build_commands_mapping(self) -> dict[str, Any]:
        mapping = {}
        for verb in COMMANDS:
            method = getattr(self, _method_name(verb.lower()), None)
            if method is not None:
                mapping[verb.lower()] = method
        return mapping

    def _extension_handler(self, verb: str) -> Any:
        """A command method a subclass added (``coll``), never a base-class method.

        Only names defined on subclasses of ``Server`` count, so a client cannot call
        ``close`` or ``start`` by sending them as commands.
        """
        name = _method_name(verb)
        if not name.isidentifier() or name.startswith("_"):
            return None
        for cls in type(self).__mro__:
            if cls is Server:
                return None
            if name in cls.__dict__:
                method = getattr(self, name)
                if asyncio.iscoroutinefunction(method):
                    return method
                return None
        return None

    # -- life cycle -------------------------------------------------------------------
    async def start(self, host: str | None = None, port: int = 0, **kwargs: Any) -> None:
        """Start listening; ``kwargs`` go to ``asyncio.start_server``."""
        if self.tls_context is not None and type(asyncio.get_running_loop()).__module__.startswith("uvloop"):
            logger.warning(
                "TLS on uvloop: uvloop's TLS transport can drop the tail of an upload "
                "under backpressure; run TLS servers on asyncio's event loop"
            )
        kwargs.setdefault("ssl", self.ssl)
        kwargs.setdefault("backlog", self.backlog)
        kwargs.setdefault("limit", max(self.max_line_length + 2, 1024))
        kwargs.setdefault("reuse_address", True)
        serve_now = kwargs.pop("start_serving", True)
        if self.proxy_policy is None:
            self.server = await asyncio.start_server(
                self.dispatcher, host, port, start_serving=False, **kwargs
            )
        else:
            self.server = await self._start_proxied(host, port, kwargs)
        # accepted connections inherit the listener's SO_OOBINLINE: no per-session call
        self._oob_inherited = all(_urgent_data_inline(sock) for sock in self.server.sockets)
        if serve_now:
            await self.server.start_serving()
        for sock in self.server.sockets:
            if sock.family in (2, 10):  # AF_INET, AF_INET6
                self.server_host, self.server_port = sock.getsockname()[:2]
                break
        logger.info("serving on %s:%s", self.server_host, self.server_port)

    async def _start_proxied(
        self, host: str | None, port: int, kwargs: dict[str, Any]
    ) -> asyncio.base_events.Server:
        """A listener whose connections first say, in a PROXY header, whom they relay.

        TLS (``ssl``) is started by hand once the header is read, not by the listener:
        the header comes before the TLS handshake."""
        policy = self.proxy_policy
        assert policy is not None
        context = kwargs.pop("ssl", None)
        if context is not None and type(asyncio.get_running_loop()).__module__.startswith("uvloop"):
            logger.warning("implicit TLS with the PROXY protocol needs asyncio's event loop, not uvloop")
        self._proxied = ProxiedListener(
            policy,
            self._serve_proxied,
            ssl_context=context,
            handshake_timeout=kwargs.pop("ssl_handshake_timeout", self.tls_handshake_timeout),
            limit=kwargs.pop("limit"),
        )
        server = await asyncio.get_running_loop().create_server(
            self._proxied, host, port, start_serving=False, **kwargs
        )
        logger.info("listener reads the %s", policy.describe())
        return server

    async def _serve_proxied(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, origin: Origin
    ) -> None:
        await self.dispatcher(reader, writer, origin=origin)

    async def serve_forever(self) -> None:
        """Serve until cancelled (proxy of ``asyncio.Server.serve_forever``)."""
        assert self.server is not None, "start() first"
        return await self.server.serve_forever()

    async def run(self, host: str | None = None, port: int = 0, **kwargs: Any) -> None:
        """Start, serve until cancelled, then close."""
        await self.start(host=host, port=port, **kwargs)
        try:
            await self.serve_forever()
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop listening and close every session."""
        if self.server is not None:
            self.server.close()
        if self._proxied is not None:
            self._proxied.close()  # connections still sending their PROXY header
        tasks = list(self.sessions)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        if self.server is not None:
            await self.server.wait_closed()
        # shared backends (an S3 connection pool per endpoint) close with the server
        backends, self._root_backends = list(self._root_backends.values()), {}
        for factory, _ in backends:
            aclose = getattr(factory, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:
                    logger.exception("closing storage backend %r failed", factory)
        logger.info("server closed")

    def hold_user_throttle(self, session: Session, user: Any) -> None:
        """Count ``session`` as a user of ``user``'s shared throttle."""
        self.release_user_throttle(session)
        self._throttle_holders.add(user)
        session.login.throttle_user = user

    def release_user_throttle(self, session: Session) -> None:
        user, session.login.throttle_user = session.login.throttle_user, None
        if user is not None and not self._throttle_holders.remove(user):
            self.throttle_per_user.pop(user, None)

    def notify(self, event: str, *args: Any) -> None:
        """Tell ``self.events`` something happened; a listener's failure stays there."""
        if type(self.events) is ServerEvents:
            return  # nobody listens
        try:
            getattr(self.events, event)(*args)
        except Exception:
            logger.exception("event listener failed on %s", event)

    def operation(self, session: Session, kind: str, **fields: Any) -> Operation:
        """An :class:`Operation` of ``kind`` by ``session``'s user (fields: path...)."""
        user = session.user
        base = getattr(user, "base_path", None)
        path_io = session.login.path_io  # not made here for a session that has none yet
        return Operation(
            kind=kind,
            session_id=session.id,
            login=getattr(user, "login", None),
            client_host=session.client_host,
            storage_root=None if base is None else str(base),
            backend="" if path_io is None else getattr(path_io, "backend_name", type(path_io).__name__),
            **fields,
        )

    async def emit(self, session: Session, operation: Operation) -> None:
        """Await the durable listeners of ``operation``; their failure is logged and
        the reply goes out as it would have."""
        if type(self.events) is ServerEvents:
            return  # nobody listens
        try:
            await self.events.completed(session, operation)
        except Exception:
            logger.exception("session %s: event listener failed on %s", session.id, operation.kind)

    async def upload_refusal(self, session: Session, virtual: Any, real: Any) -> tuple[str, str] | None:
        """Ask the listeners whether an upload to ``virtual`` may start: the reply
        refusing it, or None.  A listener that fails refuses it (451): a check that
        could not be made is not a yes."""
        if type(self.events) is ServerEvents:
            return None
        operation = self.operation(session, "upload", path=str(virtual), real=str(real),
                                   size=session.login.allocated)
        try:
            await self.events.upload_starting(session, operation)
        except UploadRefused as refused:
            logger.info("session %s: upload to %s refused: %s %s", session.id, virtual,
                        refused.code, refused.text)
            return refused.code, refused.text
        except Exception:
            logger.exception("session %s: pre-upload check of %s failed", session.id, virtual)
            return "451", "upload refused: the pre-upload check failed"
        return None

    async def shutdown(self, grace: float = 30.0) -> None:
        """Stop accepting; let running transfers end (up to ``grace`` seconds); close.

        Sessions with no transfer running get "421 server shutting down" at once,
        the others right after their transfer's 226.  When the grace period is over
        the remaining transfers are cancelled (an upload is rolled back, an S3
        multipart upload aborted) and their sessions closed with 421 too.
        """
        await shutdown_gracefully(self, grace)

    # -- replies ------------------------------------------------------------------------
    async def write_line(self, stream: StreamIO, line: str) -> None:
        logger.debug(line)
        await stream.write(encode_text(line + END_OF_LINE, self.encoding))

    async def write_response(
        self, stream: StreamIO, code: str, lines: Any = "", list: bool = False  # noqa: A002
    ) -> None:
        for line in format_reply(code, lines, as_list=list):
            await self.write_line(stream, line)

    def encode_response(
        self, code: str, lines: Any = "", list: bool = False, encoding: str | None = None  # noqa: A002
    ) -> bytes:
        """A whole reply as bytes (what ``write_response`` sends, in one write), in
        the session's ``encoding`` (OPTS UTF8, a user's code page) or the server's."""
        text = format_reply(code, lines, as_list=list)
        if logger.isEnabledFor(logging.DEBUG):
            for line in text:
                logger.debug(line)
        return encode_text(END_OF_LINE.join(text) + END_OF_LINE, encoding or self.encoding)

    @property
    def _stock_reply_writers(self) -> bool:
        """True unless a subclass overrides how replies are written."""
        cls = type(self)
        return cls.write_response is Server.write_response and cls.write_line is Server.write_line

    # -- listings (aioftp's hooks: a subclass may change how entries are shown) ------------
    async def build_list_string(self, connection: Session, path: Any) -> str:
        """One LIST line for ``path`` (aioftp's hook)."""
        stats = await connection.path_io.stat(path)
        return format_list_line(path.name, stats, now=time.time())

    async def build_mlsx_string(self, connection: Session, path: Any) -> str:
        """One MLSD/MLST line for ``path`` (aioftp's hook)."""
        stats = await connection.path_io.stat(path)
        return await self.mlsx_line(connection, path, stats, None)

    async def mlsx_line(
        self, connection: Session, path: Any, stats: Any, name: str | None,
        virtual: PurePosixPath | None = None,
    ) -> str:
        """An MLSD/MLST line from stats already at hand (a listing carries them);
        ``virtual``: the entry's virtual path when the caller knows it."""
        if virtual is None:
            virtual = connection.virtual_of(path)
        permission = await connection.user.get_permissions(virtual)
        is_dir = stat_module.S_ISDIR(stat_mode(stats))
        perm = mlsx_perm(is_dir, permission.readable, permission.writable)
        facts = connection.login.mlst_facts
        if facts is None:  # OPTS MLST not sent
            facts = DEFAULT_MLSX_FACTS
        return format_mlsx_line(path.name if name is None else name, stats, facts=facts, perm=perm)

    def _list_hooks_overridden(self) -> bool:
        """Whether a subclass, or this instance, replaced a listing hook."""
        cls = type(self)
        return (
            cls.build_list_string is not Server.build_list_string
            or cls.build_mlsx_string is not Server.build_mlsx_string
            or "build_list_string" in vars(self)
            or "build_mlsx_string" in vars(self)
        )

    # -- the per-connection loop ------------------------------------------------------------
    async def dispatcher(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
        origin: Origin | None = None,
    ) -> None:
        """Serve one control connection from greeting to close.

        ``origin``: where a connection through a load balancer comes from (its
        PROXY header); the client it names is the session's address."""
        task = asyncio.current_task()
        stream = StreamIO(reader, writer, write_timeout=self.socket_timeout)
        if not self._oob_inherited:
            _urgent_data_inline(writer.get_extra_info("socket"))
        session = Session(
            reader,
            writer,
            stream,
            settings=self._session_settings(),
            data=self._data_channel_for,
            encode_reply=self.encode_response,
            write_reply=None if self._stock_reply_writers else self._write_reply,
            client=origin.client if origin is not None and origin.relayed else None,
        )
        assert task is not None
        self.sessions[task] = session
        # a balancer's health checks (PROXY LOCAL) are routine: no lines at info
        level = logging.DEBUG if origin is not None and origin.balancer_own else logging.INFO
        if origin is None:
            logger.info("session %s: connection from %s:%s", session.id, session.client_host, session.client_port)
        else:
            logger.log(level, "session %s: connection from %s", session.id, origin.describe())
        self.notify("session_opened", session)
        try:
            refused = self.address_rules.refusal(session.client_host)
            if refused is not None:
                logger.info("session %s: connection refused before the greeting: %s",
                            session.id, refused)
                await self.write_response(stream, "421", ADDRESS_REFUSED_TEXT)
                return
            if self.available_connections.locked():
                await self.write_response(stream, "421", "too many connections")
                return
            per_address = self.maximum_connections_per_address
            if per_address is not None:
                held = self._per_address.get(session.client_host, 0)
                if held >= per_address:
                    logger.info("session %s: %s already has %d connections", session.id,
                                session.client_host, held)
                    await self.write_response(stream, "421", "too many connections from your address")
                    return
                self._per_address.add(session.client_host)
                session.address_counted = True
            self.available_connections.acquire()
            session.acquired = True
            session.response("220", self.welcome_message)
            session.login_started = session.last_activity = session.loop.time()
            arm_watchdog(session)
            await self._command_loop(session)
        except asyncio.CancelledError:
            # shutdown() says goodbye (421); close() just closes, as aioftp does
            if not session.closing and self.shutting_down:
                session.closing = True
                try:
                    await asyncio.wait_for(
                        self.write_response(stream, "421", "server shutting down"), 1
                    )
                except (OSError, TimeoutError, RuntimeError, asyncio.CancelledError):
                    pass
        except (ConnectionError, OSError, TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            await self._close_session(session)
            self.sessions.pop(task, None)
            logger.log(level, "session %s: closed", session.id)
            self.notify("session_closed", session)
            session.release()

    async def _command_loop(self, session: Session) -> None:
        while not session.closing:
            await session.flushed()
            if session.closing:
                return
            raw = await self._read_command(session)
            if raw is None:
                return
            keep = await self.dispatch_command(session, raw)
            if not keep:
                await session.flushed()
                return
            # pipelined commands are read without waiting: let other sessions run
            # between them, so one client cannot hold the loop with a burst
            await asyncio.sleep(0)

    async def _read_command(self, session: Session) -> bytes | None:
        """One command line; None when the connection ended (or timed out)."""
        reader = session.reader
        while True:
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.LimitOverrunError as exc:
                await self._discard_long_line(session, reader, exc.consumed)
                continue
            except asyncio.IncompleteReadError as exc:
                if exc.partial.strip() and not session.timed_out:
                    return exc.partial
                return None
            session.last_activity = session.loop.time()
            return line

    async def _discard_long_line(self, session: Session, reader: asyncio.StreamReader, consumed: int) -> None:
        """Drop an over-long line up to and including its end, then reply 500."""
        await reader.readexactly(consumed)
        while True:
            try:
                await reader.readuntil(b"\n")
                break
            except asyncio.LimitOverrunError as exc:
                await reader.readexactly(exc.consumed)
        session.response("500", f"command line too long (limit {self.max_line_length} bytes)")

    async def dispatch_command(self, session: Session, raw: bytes) -> bool:
        """Run one command line; False closes the session."""
        line = decode_line(strip_telnet(raw), session.encoding)
        verb, rest = parse_command(line)
        if verb == "pass":
            logger.debug("session %s: PASS ****", session.id)
        else:
            logger.debug("session %s: %s", session.id, line.rstrip("\r\n"))
        if not verb:
            session.response("500", "empty command")
            return True
        handler = self.commands_mapping.get(verb) or self._extension_handler(verb)
        if handler is None:
            if is_verb(verb):
                session.response("502", f"'{verb.upper()}' not implemented")
            else:
                session.response("500", f"'{_printable(verb.upper())}' not understood")
            return True
        if verb not in _KEEPS_RESTART_OFFSET:
            session.login.restart_offset = 0  # RFC 959: REST immediately precedes its transfer
        refused = range_refusal(session, verb)  # RANG, too, is for the command right after
        if refused is not None:
            session.response(*refused)
            return True
        try:
            result = await handler(session, rest)
        except PathIOError as exc:
            session.response(*reply_for_storage_error(exc))
            return True
        except ValueError as exc:
            # a path with NUL, an argument the parsers rejected
            session.response("501", f"syntax error in arguments: {_printable(str(exc))}")
            return True
        except (ConnectionError, asyncio.IncompleteReadError):
            raise
        except Exception:
            # a bug (ours, or a subclass's handler): the session's state can no longer
            # be trusted, so it ends, as aioftp ends it; a running upload rolls back
            logger.exception("session %s: error in %s; closing the session", session.id, verb.upper())
            return False
        return result is not False

    async def _close_session(self, session: Session) -> None:
        session.closing = True
        stop_watchdog(session)
        workers = list(session.extra_workers)
        for worker in workers:
            worker.cancel()
        if workers:
            await asyncio.wait(workers, timeout=5)
        await session.close_data()
        if session.user is not None:
            try:
                await self.user_manager.notify_logout(session.user)
            except Exception:
                logger.exception("session %s: notify_logout failed", session.id)
        self.release_user_throttle(session)
        if session.acquired:
            session.acquired = False
            self.available_connections.release()
        if session.address_counted:
            session.address_counted = False
            self._per_address.remove(session.client_host)
        try:
            session.writer.close()
        except (OSError, RuntimeError):
            pass

    # -- what a session is built from ------------------------------------------------------
    def _settings_key(self) -> tuple[Any, ...]:
        return (
            self.path_io_factory, self.encoding, self.socket_timeout, self.idle_timeout,
            self.login_timeout, self.wait_future_timeout, self.path_timeout, self.block_size,
            self.data_port_pool, self.tls_context, self.data_timeout,
            self.data_tls_handshake_timeout, self.passive_listen_timeout,
            self.require_tls_session_reuse, self.strict_rfc, self.proxy_policy,
        )  # fmt: skip

    def _settings(self) -> tuple[SessionSettings, DataChannelSettings]:
        """What new sessions are built from; made again only when an attribute it
        reads changed (a reload, a test), so a login does not rebuild it."""
        key = self._settings_key()
        cached = self._settings_cache
        if cached is not None and cached[0] == key:
            return cached[1], cached[2]
        session_settings = SessionSettings(
            path_io_factory=self.path_io_factory,
            encoding=self.encoding,
            socket_timeout=self.socket_timeout,
            idle_timeout=self.idle_timeout,
            login_timeout=self.login_timeout,
            wait_future_timeout=self.wait_future_timeout,
            path_timeout=self.path_timeout,
            block_size=self.block_size,
            strict_rfc=self.strict_rfc,
        )
        data_timeout = self.socket_timeout if self.socket_timeout is not None else self.data_timeout
        handshake = self.data_tls_handshake_timeout
        if data_timeout is not None:
            handshake = min(handshake, data_timeout)
        data_settings = DataChannelSettings(
            ports=self.data_port_pool,
            tls_context=self.tls_context,
            handshake_timeout=handshake,
            accept_timeout=self.wait_future_timeout,
            listen_timeout=self.passive_listen_timeout,
            socket_timeout=data_timeout,
            require_session_reuse=self.require_tls_session_reuse,
            strict_rfc=self.strict_rfc,
            proxy=self.proxy_policy,
        )
        self._settings_cache = (key, session_settings, data_settings)
        return session_settings, data_settings

    def _session_settings(self) -> SessionSettings:
        return self._settings()[0]

    def _data_channel_for(self, session: Session) -> DataChannel:
        return DataChannel(
            self._settings()[1],
            control_peer=session.client_host,
            local_host=session.server_host,
            label=session.id,
            protected=session.implicit_tls,
        )

    def fxp_allowed(self, session: Session) -> bool:
        """Whether this session may use a data connection with a third host (FXP).

        Off unless ``allow_fxp`` is True (everyone) or names the logged-in user:
        site-to-site transfers are the FTP bounce attack's mechanism (RFC 2577).
        """
        allow = self.allow_fxp
        if allow is True:
            return True
        if not allow or not session.login.logged:
            return False
        return getattr(session.user, "login", None) in allow

    async def _write_reply(self, stream: StreamIO, code: str, info: Any, as_list: bool) -> None:
        await self.write_response(stream, code, info, as_list)

    # -- storage per user -----------------------------------------------------------------
    def storage_for_user(self, session: Session, user: Any) -> tuple[Any, Any]:
        """(path I/O, storage root) for a user's root: the server's factory for a plain
        path (root None: ``user.base_path``), the backend named by the scheme for a URL
        root (``memory://``, ``s3://``...); for a user with folders (``user.mounts``), a
        tree of stores whose root is ``/`` (``backends.mounts``)."""
        base = user.base_path
        if getattr(user, "mounts", None):
            table = shared_table(base, user.mounts, local_factory=self.path_io_factory,
                                 shared=self._root_backends, options=self.storage_options)
            return table.path_io(timeout=self.path_timeout, connection=session), PurePosixPath("/")
        if isinstance(base, str) and "://" in base:
            entry = self._root_backends.get(base)
            if entry is None:
                factory, real_root = backend_for_root(base, self.storage_options)
                if not isinstance(factory, PathIONursery):
                    factory = PathIONursery(factory)
                entry = self._root_backends[base] = (factory, real_root)
            factory, real_root = entry
            return factory(timeout=self.path_timeout, connection=session), real_root
        return self.path_io_factory(timeout=self.path_timeout, connection=session), None


def _urgent_data_inline(sock: Any) -> bool:
    """SO_OOBINLINE on a socket; whether it could be set.

    Clients send ABOR as TCP urgent data (ftplib: sendall(b"ABOR\r\n", MSG_OOB)).
    Without SO_OOBINLINE the kernel takes the urgent byte, the final LF, out of the
    stream and the ABOR line never ends.
    """
    if sock is None:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1)
    except (OSError, AttributeError):
        return False
    return True


#: Commands between REST and its transfer that keep the offset (setting up the data
#: connection); any other command clears it, as RFC 959 has REST immediately precede
#: the transfer it restarts.
_KEEPS_RESTART_OFFSET = frozenset({"rest", "pasv", "epsv", "port", "eprt", "retr", "stor", "appe", "stou"})


def _method_name(verb: str) -> str:
    return verb + "_" if verb in ("pass",) else verb


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)[:64]



