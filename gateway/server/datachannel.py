"""The data channel of one session: passive or active mode, PROT, and its connection.

One object per session owns everything about data connections: the passive
listener and its port from the pool, the PORT/EPRT address, the protection level
(PBSZ/PROT) and TLS wrapping, who may connect (the control connection's peer only,
unless FXP is allowed), and the timeouts.  It is built from
:class:`DataChannelSettings` and knows nothing of the server or of replies: a
handler asks it for a connection with :meth:`DataChannel.connect`, and a failure is
a :class:`DataChannelRefused` carrying the reply to give.

A passive listener lives from PASV/EPSV to the end of the next transfer, or until
``listen_timeout`` passes without one; it accepts one connection (from the control
peer) and then stops listening, so a second connection cannot steal the transfer,
and its port goes back to the pool at once.

Behind a load balancer with the PROXY protocol (``settings.proxy``), a passive
connection from a trusted balancer starts with its header, read before anything
else (``gateway.server.proxied``); the client it names is the one compared with
the control connection's client.  A connection from anyone else is checked by its
own address, as without a balancer.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.server.dataprotocol import DataProtocol, ProtocolReader, ProtocolWriter
from gateway.server.datatls import data_tls_scope, prepare_data_tls
from gateway.server.proxied import HeaderReader, Origin, ProxyPolicy, hand_over
from gateway.streams import ThrottleStreamIO
from gateway.throttle import StreamThrottle

__all__ = (
    "DATA_READ_LIMIT",
    "DataChannel",
    "DataChannelRefused",
    "DataChannelSettings",
    "FIRST_UNPRIVILEGED_PORT",
    "PortPool",
    "same_host",
)

logger = logging.getLogger("gateway.server")

#: Read buffer of a TLS data connection's stream.
DATA_READ_LIMIT = 131072
#: Ports below this belong to system services; a PORT to one is a bounce attempt.
FIRST_UNPRIVILEGED_PORT = 1024


class DataChannelRefused(Exception):
    """The data channel cannot do what was asked; ``code`` and ``text`` are the reply."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text


def same_host(a: str, b: str) -> bool:
    """Compare addresses, treating IPv4-mapped IPv6 as its IPv4 form."""
    if a == b:
        return True
    try:
        ia = ipaddress.ip_address(a.split("%")[0])
        ib = ipaddress.ip_address(b.split("%")[0])
    except ValueError:
        return False
    if isinstance(ia, ipaddress.IPv6Address) and ia.ipv4_mapped:
        ia = ia.ipv4_mapped
    if isinstance(ib, ipaddress.IPv6Address) and ib.ipv4_mapped:
        ib = ib.ipv4_mapped
    return ia == ib


def address_family(host: str) -> int:
    """4 or 6; an IPv4-mapped IPv6 address counts as IPv4."""
    address = ipaddress.ip_address(host.partition("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
        return 6
    return 4


class PortPool:
    """The passive ports of a server, handed out least recently used first."""

    def __init__(self, ports: Iterable[int] | None) -> None:
        self._free: list[int] = list(dict.fromkeys(int(p) for p in ports)) if ports is not None else []
        #: False: any free port will do (no range given); True: only these (an
        #: empty range then means no passive mode at all)
        self.enabled = ports is not None

    def candidates(self) -> list[int]:
        return list(self._free)

    def take(self, port: int) -> None:
        self._free.remove(port)

    def give_back(self, port: int) -> None:
        if self.enabled and port not in self._free:
            self._free.append(port)

    def __len__(self) -> int:
        return len(self._free)

    def qsize(self) -> int:
        """Free ports (aioftp's ``available_data_ports`` is a queue of them)."""
        return len(self._free)


@dataclass(frozen=True, slots=True)
class DataChannelSettings:
    """What every data channel of one server shares."""

    ports: PortPool
    tls_context: ssl.SSLContext | None = None
    #: seconds a PROT P data connection has to finish its TLS handshake
    handshake_timeout: float = 15.0
    #: seconds a transfer waits for the client's data connection to arrive
    accept_timeout: float | None = 1.0
    #: seconds a passive listener waits for a transfer command before it closes
    listen_timeout: float | None = 60.0
    #: seconds a data connection may stall (no byte moving) before it is dropped
    socket_timeout: float | None = 300.0
    #: a protected data connection must resume the control connection's TLS session
    require_session_reuse: bool = False
    #: seconds an active-mode connection attempt may take
    connect_timeout: float = 10.0
    #: no free passive port is 425 (RFC 959: a data-connection failure the client may
    #: retry) rather than aioftp's 421; the session goes on either way
    strict_rfc: bool = False
    #: passive connections from these balancers start with a PROXY header (None: off)
    proxy: ProxyPolicy | None = None


class _Listener:
    """A passive listening socket and what it accepted (at most one connection)."""

    __slots__ = ("server", "port", "tls", "from_pool", "expiry", "accepting")

    def __init__(self, server: asyncio.base_events.Server, port: int, tls: bool, from_pool: bool) -> None:
        self.server = server
        self.port = port
        self.tls = tls
        self.from_pool = from_pool
        self.expiry: asyncio.TimerHandle | None = None
        #: False once the one connection arrived and the socket stopped listening
        self.accepting = True


class DataChannel:
    """The data side of one session (see the module docstring)."""

    def __init__(
        self,
        settings: DataChannelSettings,
        *,
        control_peer: str,
        local_host: str,
        label: object = "",
        protected: bool = False,
    ) -> None:
        self.settings = settings
        self.control_peer = control_peer
        self.local_host = local_host
        #: data connections with other hosts than the control peer (FXP) are allowed;
        #: set at login for the users the server allows it
        self.fxp_allowed = False
        self._label = label
        #: PROT level: "C" clear or "P" private (implicit TLS starts at P)
        self.protection = "P" if protected else "C"
        #: PBSZ given (always 0 for TLS)
        self.pbsz: int | None = None
        #: EPSV ALL: only EPSV may set up data connections from now on
        self.epsv_all = False
        #: PORT/EPRT address the next transfer connects to
        self.active_address: tuple[str, int] | None = None
        self._listener: _Listener | None = None
        self._connection: ThrottleStreamIO | None = None
        self._tls_refused = False
        #: loop time the last data TCP connection arrived (its TLS handshake may still run)
        self._arrived: float | None = None
        self._changed: asyncio.Event | None = None
        self._pending: set[asyncio.Task[Any]] = set()
        #: passive connections from a balancer whose PROXY header is still arriving
        self._reading_headers: set[HeaderReader] = set()
        self.throttles: Mapping[str, StreamThrottle] = {}

    # -- state -------------------------------------------------------------------------
    @property
    def prepared(self) -> bool:
        """PASV/EPSV listening, PORT/EPRT given, or a data connection already open."""
        return (
            self._listener is not None
            or self._connection is not None
            or self.active_address is not None
        )

    @property
    def listening(self) -> bool:
        return self._listener is not None

    @property
    def listener_server(self) -> asyncio.base_events.Server | None:
        """The passive listener (aioftp's ``connection.passive_server``)."""
        return self._listener.server if self._listener is not None else None

    @property
    def connection(self) -> ThrottleStreamIO | None:
        """A data connection accepted and not yet used (aioftp's ``data_connection``)."""
        return self._connection

    def take_connection(self) -> ThrottleStreamIO | None:
        connection, self._connection = self._connection, None
        return connection

    def set_connection(self, stream: ThrottleStreamIO | None) -> None:
        self._connection = stream
        self.changed.set()

    @property
    def changed(self) -> asyncio.Event:
        """Set whenever a data connection arrives or is refused."""
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    # -- modes ---------------------------------------------------------------------------
    async def open_passive(self) -> tuple[int, bool]:
        """Listen for the client's data connection; (port, whether it is new).

        A listener still open from an earlier PASV is reused when its TLS mode
        matches the protection level and it has not accepted its connection yet,
        so the client may send PASV twice.
        """
        self.active_address = None
        self._drop_connection()
        # asyncio's loop: a clear listener upgrades what it accepts (so a failed
        # handshake is seen at once); uvloop reads a ClientHello before the upgrade
        # could start, so there a PROT P listener speaks TLS from the first byte
        # (behind a balancer its PROXY header comes first, so it is always a clear
        # listener: TLS with the PROXY protocol needs asyncio's loop)
        tls = self.protection == "P" and _on_uvloop() and self.settings.proxy is None
        if self._listener is not None:
            if self._listener.tls == tls and self._listener.accepting:
                self._arm_expiry(self._listener)
                return self._listener.port, False
            await self.close_listener()
        return await self._listen(tls), True

    async def match_protection(self) -> None:
        """After PROT C following PASV under PROT P, reopen the listener in clear on the
        same port (the client will connect in clear).  The other way round, a clear
        listener upgrades the connection it accepts."""
        listener = self._listener
        if listener is None or not listener.tls or self.protection == "P" or not listener.accepting:
            return
        port = listener.port
        await self.close_listener()
        await self._listen(False, prefer_port=port)

    def active_refusal(self, host: str, port: int) -> DataChannelRefused | None:
        """Why a PORT/EPRT address may not be used (RFC 2577), or None."""
        if self.fxp_allowed:
            return None
        peer = self.control_peer
        if address_family(host) != address_family(peer):
            use = "(1)" if address_family(peer) == 4 else "(2)"
            return DataChannelRefused("522", f"network protocol not supported, use {use}")
        if not same_host(host, peer):
            logger.warning("session %s: refused PORT/EPRT to %s (control peer is %s)", self._label, host, peer)
            return DataChannelRefused("501", "data connections go only to the control connection's address")
        if port < FIRST_UNPRIVILEGED_PORT:
            logger.warning("session %s: refused PORT/EPRT to privileged port %s", self._label, port)
            return DataChannelRefused(
                "501", f"port {port} is privileged; use a port >= {FIRST_UNPRIVILEGED_PORT}"
            )
        return None

    async def set_active(self, host: str, port: int) -> None:
        """PORT/EPRT: the next transfer connects to ``host:port`` (already checked)."""
        self._drop_connection()
        await self.close_listener()
        self.active_address = (host, port)

    # -- a transfer's connection -----------------------------------------------------------
    async def connect(self) -> ThrottleStreamIO:
        """The data connection for the transfer starting now.

        Active mode connects out; passive mode waits (``accept_timeout``) for the
        client's connection.  Raises :class:`DataChannelRefused` (425, 522) when
        there is none.
        """
        stream = self.take_connection()
        if stream is not None:
            return stream
        active, self.active_address = self.active_address, None
        if active is not None:
            stream = await self._connect_active(*active)
            if stream is None:
                raise DataChannelRefused("425", "can't open data connection")
            return stream
        if self._listener is not None:
            self._cancel_expiry(self._listener)
            await self._wait_for_connection()
        stream = self.take_connection()
        if stream is not None:
            return stream
        if self._tls_refused:
            self._tls_refused = False
            raise DataChannelRefused("522", "data connection must resume the TLS session")
        raise DataChannelRefused("425", "can't open data connection")

    async def _wait_for_connection(self) -> None:
        """Wait ``accept_timeout`` for the client's connection; once one has arrived,
        its TLS handshake gets up to ``handshake_timeout`` to finish."""
        loop = asyncio.get_running_loop()
        accept = self.settings.accept_timeout
        accept_deadline = None if accept is None else loop.time() + accept
        while self._connection is None and not self._tls_refused:
            deadline = accept_deadline
            if deadline is not None and self._arrived is not None:
                deadline = max(deadline, self._arrived + self.settings.handshake_timeout)
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return
            self.changed.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self.changed.wait()
            except TimeoutError:
                continue  # a connection may have arrived meanwhile: look again

    def _note_arrival(self) -> None:
        self._arrived = asyncio.get_running_loop().time()
        self.changed.set()

    async def transfer_done(self) -> None:
        """A transfer ended: its listener (if any) is closed and its port freed."""
        await self.close_listener()

    # -- closing -------------------------------------------------------------------------
    def _drop_connection(self) -> None:
        connection = self.take_connection()
        if connection is not None:
            connection.close()

    async def close_listener(self) -> None:
        listener, self._listener = self._listener, None
        self._arrived = None
        if listener is None:
            return
        self._cancel_expiry(listener)
        listener.server.close()
        if listener.from_pool:
            self.settings.ports.give_back(listener.port)

    async def close(self) -> None:
        """Everything down: the listener, an unused connection, a pending handshake."""
        self._drop_connection()
        await self.close_listener()
        for task in list(self._pending):
            task.cancel()
        for reader in list(self._reading_headers):
            reader.abort()
        self.active_address = None

    async def reset(self) -> None:
        """REIN: back to a fresh channel (protection stays: it follows the control TLS)."""
        await self.close()
        self.epsv_all = False

    # -- passive listener internals ----------------------------------------------------------
    async def _listen(self, tls: bool, prefer_port: int | None = None) -> int:
        context = self._tls_context() if tls else None
        pool = self.settings.ports
        if prefer_port is not None:
            try:
                server = await self._start_listener(prefer_port, context)
            except OSError:
                pass  # taken meanwhile: a new port, which the client learns from its next PASV
            else:
                from_pool = pool.enabled and prefer_port in pool.candidates()
                if from_pool:
                    pool.take(prefer_port)
                return self._keep(server, prefer_port, tls, from_pool)
        if not pool.enabled:
            server = await self._start_listener(0, context)
            return self._keep(server, server.sockets[0].getsockname()[1], tls, False)
        for port in pool.candidates():
            try:
                server = await self._start_listener(port, context)
            except OSError as exc:
                if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                    continue
                raise
            pool.take(port)
            return self._keep(server, port, tls, True)
        raise DataChannelRefused("425" if self.settings.strict_rfc else "421", "no free data port; try again later")

    def _keep(self, server: asyncio.base_events.Server, port: int, tls: bool, from_pool: bool) -> int:
        listener = _Listener(server, port, tls, from_pool)
        self._listener = listener
        self._arm_expiry(listener)
        return port

    def _arm_expiry(self, listener: _Listener) -> None:
        self._cancel_expiry(listener)
        timeout = self.settings.listen_timeout
        if timeout is not None:
            loop = asyncio.get_running_loop()
            listener.expiry = loop.call_later(timeout, self._expire, listener)

    @staticmethod
    def _cancel_expiry(listener: _Listener) -> None:
        if listener.expiry is not None:
            listener.expiry.cancel()
            listener.expiry = None

    def _expire(self, listener: _Listener) -> None:
        """No transfer came: the listener, and a connection it accepted, go away."""
        listener.expiry = None
        if self._listener is listener:
            logger.info("session %s: passive listener on port %s unused, closed", self._label, listener.port)
            self._drop_connection()
            self._listener = None
            listener.server.close()
            if listener.from_pool:
                self.settings.ports.give_back(listener.port)

    def _stop_listening(self) -> None:
        """The one connection arrived: whoever connects to this port from now on is
        turned away at once (the socket keeps listening, so they see a reset rather
        than a queue); the port is the transfer's until it ends."""
        listener = self._listener
        if listener is not None:
            listener.accepting = False

    async def _start_listener(self, port: int, context: ssl.SSLContext | None) -> asyncio.base_events.Server:
        """A passive listener; with ``context`` TLS runs from the first byte.

        A TLS client sends its ClientHello the moment it connects.  Accepted in
        clear text, those bytes may already sit in the stream's buffer when
        ``start_tls`` runs, and the handshake then waits forever (seen with curl
        under uvloop).  So a listener opened while PROT P is in force is a TLS
        listener.
        """
        loop = asyncio.get_running_loop()
        sock = _listening_socket(self.local_host, port)
        try:
            return await self._serve(loop, sock, context)
        except BaseException:
            sock.close()
            raise

    async def _serve(
        self, loop: asyncio.AbstractEventLoop, sock: socket.socket, context: ssl.SSLContext | None
    ) -> asyncio.base_events.Server:
        if context is None:
            # in the data TLS scope too: on uvloop, a later ``start_tls`` of what this
            # listener accepts makes its TLS object in the listener's context
            with data_tls_scope(self.settings.tls_context):
                return await loop.create_server(self._plain_protocol, sock=sock, backlog=8)

        def arriving() -> asyncio.StreamReaderProtocol:
            # called when the TCP connection is accepted, before its TLS handshake:
            # the transfer waiting for it now gives the handshake its own timeout
            self._note_arrival()
            reader = asyncio.StreamReader(limit=DATA_READ_LIMIT)
            return asyncio.StreamReaderProtocol(reader, self._accepted_tls)

        with data_tls_scope():
            return await loop.create_server(
                arriving, sock=sock, backlog=8, ssl=context,
                ssl_handshake_timeout=self.settings.handshake_timeout,
            )

    def _tls_context(self) -> ssl.SSLContext:
        context = self.settings.tls_context
        if context is None:
            raise DataChannelRefused("534", "TLS is not configured on this server")
        prepare_data_tls(context)
        return context

    # -- accepting -----------------------------------------------------------------------------
    def _plain_protocol(self) -> asyncio.BaseProtocol:
        """What a clear passive listener gives each connection it accepts."""
        policy = self.settings.proxy
        if policy is None:
            return DataProtocol(self._accepted_plain)
        return HeaderReader(
            policy, self._header_read, label=f"session {self._label}: data connection",
            pending=self._reading_headers,
        )

    def _header_read(self, transport: Any, origin: Origin) -> None:
        """A passive connection's PROXY header is in (or it needs none): its client
        is known.  A header that took a while may find its listener gone."""
        listener = self._listener
        local = transport.get_extra_info("sockname") or ("", 0)
        if listener is None or local[1] != listener.port:
            logger.info("session %s: data connection from %s arrived after its listener "
                        "closed", self._label, origin.describe())
            transport.close()
            return
        hand_over(transport, DataProtocol(lambda protocol: self._accepted_plain(protocol, origin)))

    def _acceptable(self, transport: Any, origin: Origin | None = None) -> bool:
        """Only the control connection's client may connect, once per transfer (behind
        a balancer: the client its PROXY header names)."""
        if self._listener is not None and not self._listener.accepting:
            return False
        if origin is None:
            peer = transport.get_extra_info("peername") or ("", 0)
            client, described = peer[0], str(peer[0])
        else:
            client, described = origin.client[0], origin.describe()
        if not same_host(client, self.control_peer) and not self.fxp_allowed:
            logger.warning(
                "session %s: refused data connection from %s (control peer is %s)",
                self._label, described, self.control_peer,
            )
            return False
        return self._connection is None

    def _accepted_plain(self, protocol: DataProtocol, origin: Origin | None = None) -> None:
        transport = protocol.transport
        if not self._acceptable(transport, origin):
            transport.close()
            return
        self._stop_listening()
        if self.protection == "P":
            # TLS over this clear connection: the ClientHello must stay in the socket
            # until the upgrade starts, and the handshake gets its own timeout
            transport.pause_reading()
            self._note_arrival()
            task = asyncio.get_running_loop().create_task(self._upgrade_plain(protocol))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
            return
        self._use_plain(protocol)

    def _use_plain(self, protocol: DataProtocol) -> None:
        self.set_connection(
            ThrottleStreamIO(
                ProtocolReader(protocol),
                ProtocolWriter(protocol),
                throttles=dict(self.throttles),
                timeout=self.settings.socket_timeout,
            )
        )

    async def _upgrade_plain(self, protocol: DataProtocol) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=DATA_READ_LIMIT)
        stream_protocol = asyncio.StreamReaderProtocol(reader)
        try:
            with data_tls_scope():
                transport = await loop.start_tls(
                    protocol.transport,
                    stream_protocol,
                    self._tls_context(),
                    server_side=True,
                    ssl_handshake_timeout=self.settings.handshake_timeout,
                )
        except (OSError, TimeoutError, ConnectionError, DataChannelRefused) as exc:
            logger.info("session %s: data TLS handshake failed: %s", self._label, exc)
            protocol.transport.close()
            self._arrived = None  # the transfer waiting for it stops waiting
            self.changed.set()
            return
        assert transport is not None
        stream_protocol.connection_made(transport)
        writer = asyncio.StreamWriter(transport, stream_protocol, reader, loop)
        self._use_tls(reader, writer)

    async def _accepted_tls(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._acceptable(writer):
            writer.close()
            return
        self._stop_listening()
        self._use_tls(reader, writer)

    def _use_tls(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.settings.require_session_reuse:
            ssl_object = writer.get_extra_info("ssl_object")
            if ssl_object is None or not ssl_object.session_reused:
                self._tls_refused = True
                writer.close()
                self.changed.set()
                return
        self.set_connection(
            ThrottleStreamIO(reader, writer, throttles=dict(self.throttles), timeout=self.settings.socket_timeout)
        )

    # -- active mode -------------------------------------------------------------------------
    async def _connect_active(self, host: str, port: int) -> ThrottleStreamIO | None:
        """Connect to the client's data port; None (after logging) when unreachable.

        Under PROT P the server is the TLS server, as RFC 4217 requires whichever
        side connects, with TLS from the first byte.
        """
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if address_family(host) == 6 and ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            async with asyncio.timeout(self.settings.connect_timeout):
                await loop.sock_connect(sock, (host, port))
        except (OSError, TimeoutError) as exc:
            sock.close()
            logger.info("session %s: active connection to %s:%s failed: %s", self._label, host, port, exc)
            return None
        except BaseException:  # ABOR or shutdown while connecting
            sock.close()
            raise
        if self.protection != "P":
            _, protocol = await loop.connect_accepted_socket(DataProtocol, sock)
            self._use_plain(protocol)
            return self.take_connection()
        reader = asyncio.StreamReader(limit=DATA_READ_LIMIT)
        stream_protocol = asyncio.StreamReaderProtocol(reader)
        try:
            with data_tls_scope():
                transport, _ = await loop.connect_accepted_socket(
                    lambda: stream_protocol,
                    sock,
                    ssl=self._tls_context(),
                    ssl_handshake_timeout=self.settings.handshake_timeout,
                )
        except (OSError, TimeoutError, ConnectionError, DataChannelRefused) as exc:
            sock.close()
            logger.info("session %s: active data TLS handshake failed: %s", self._label, exc)
            return None
        except BaseException:
            sock.close()
            raise
        writer = asyncio.StreamWriter(transport, stream_protocol, reader, loop)
        self._use_tls(reader, writer)
        stream = self.take_connection()
        if stream is None and self._tls_refused:
            self._tls_refused = False
            raise DataChannelRefused("522", "data connection must resume the TLS session")
        return stream


def _on_uvloop() -> bool:
    return type(asyncio.get_running_loop()).__module__.startswith("uvloop")


def _listening_socket(host: str, port: int) -> socket.socket:
    """A bound, non-blocking socket for a passive listener.  Made here rather than by
    ``create_server(host, port)``, which would look the literal address up (through a
    thread pool on uvloop) on every PASV."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.partition("%")[0] if family == socket.AF_INET else host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
