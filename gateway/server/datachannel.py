"""Data connections: the passive listener of a session, and zero-copy sends.

Secure by default: a passive connection is accepted only from the control
connection's peer address; anything else is dropped while the listener keeps
waiting for the real client.  A session owns at most one listener, however many
PASV/EPSV commands arrive.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import os
import socket
from typing import TYPE_CHECKING, Any

from gateway.errors import NoAvailablePort
from gateway.server.dataprotocol import DataProtocol, ProtocolReader, ProtocolWriter
from gateway.streams import ThrottleStreamIO

if TYPE_CHECKING:
    from gateway.server.session import Session

__all__ = (
    "PortPool",
    "open_passive_listener",
    "close_passive_listener",
    "sendfile",
    "same_host",
    "fxp_allowed",
    "accept_plain_data_connection",
    "accept_data_connection",
    "DATA_READ_LIMIT",
)

logger = logging.getLogger("gateway.server")

DATA_READ_LIMIT = 131072


def same_host(a: str, b: str) -> bool:
    """Compare addresses, treating IPv4-mapped IPv6 as its IPv4 form."""
    if a == b:
        return True
    try:
        ia, ib = ipaddress.ip_address(a.split("%")[0]), ipaddress.ip_address(b.split("%")[0])
    except ValueError:
        return False
    if isinstance(ia, ipaddress.IPv6Address) and ia.ipv4_mapped:
        ia = ia.ipv4_mapped
    if isinstance(ib, ipaddress.IPv6Address) and ib.ipv4_mapped:
        ib = ib.ipv4_mapped
    return ia == ib


def fxp_allowed(session: Session) -> bool:
    """Whether this session may use a data connection with a third host (FXP).

    Off unless the server's ``allow_fxp`` is True (everyone) or names the logged-in
    user: site-to-site transfers are the FTP bounce attack's mechanism (RFC 2577).
    """
    allow = getattr(session.server, "allow_fxp", False)
    if allow is True:
        return True
    if not allow or session.user is None or not session.logged:
        return False
    return getattr(session.user, "login", None) in allow


class PortPool:
    """The ``data_ports`` of a server, handed out least recently used first."""

    def __init__(self, ports: Any) -> None:
        self._free: list[int] = list(dict.fromkeys(int(p) for p in ports)) if ports else []
        self.enabled = bool(self._free)

    def candidates(self) -> list[int]:
        return list(self._free)

    def take(self, port: int) -> None:
        self._free.remove(port)

    def give_back(self, port: int) -> None:
        if port not in self._free:
            self._free.append(port)


async def open_passive_listener(session: Session, prefer_port: int | None = None) -> int:
    """Start (or reuse) the session's passive listener; return its port.

    ``prefer_port``: reopen on this port (the one the client was already told).
    """
    server = session.server
    tls = session.data_protection == "P"
    if session.passive_server is not None:
        if getattr(session, "passive_tls", False) == tls:
            return session.passive_server.sockets[0].getsockname()[1]
        await close_passive_listener(session)  # PROT changed since: reopen
    context = server.data_tls_context(session) if tls else None
    session.passive_tls = tls

    accepted: Any
    if context is None:
        # plain TCP: a buffered protocol, received straight into a reused buffer
        def accepted(protocol: DataProtocol) -> None:
            accept_plain_data_connection(session, protocol)
    else:
        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await accept_data_connection(session, reader, writer)

    host = session.server_host
    pool: PortPool = server.data_port_pool
    if prefer_port is not None:
        try:
            listener = await _start_listener(
                accepted, host, prefer_port, context, server.tls_handshake_timeout
            )
        except OSError:
            pass  # taken meanwhile: a new port, which the client learns from its next PASV
        else:
            if pool.enabled and prefer_port in pool.candidates():
                pool.take(prefer_port)
                session.passive_port_from_pool = prefer_port
            else:
                session.passive_port_from_pool = None
            session.passive_server = listener
            return prefer_port
    if not pool.enabled:
        listener = await _start_listener(accepted, host, 0, context, server.tls_handshake_timeout)
        session.passive_server = listener
        session.passive_port_from_pool = None
        return listener.sockets[0].getsockname()[1]
    for port in pool.candidates():
        try:
            listener = await _start_listener(
                accepted, host, port, context, server.tls_handshake_timeout
            )
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                continue
            raise
        pool.take(port)
        session.passive_server = listener
        session.passive_port_from_pool = port
        return port
    raise NoAvailablePort("no free data port")


async def _start_listener(
    accepted: Any, host: str, port: int, context: Any, handshake_timeout: float
) -> asyncio.base_events.Server:
    """A passive listener; with ``context`` TLS runs from the first byte.

    A TLS client sends its ClientHello the moment it connects.  Accepted in clear
    text, those bytes may already sit in the stream's buffer when ``start_tls``
    runs, and the handshake then waits forever (seen with curl under uvloop, which
    ignores ``pause_reading`` from ``connection_made``).  So a listener opened while
    PROT P is in force is a TLS listener.
    """
    if context is None:
        loop = asyncio.get_running_loop()
        return await loop.create_server(
            lambda: DataProtocol(accepted), host, port, backlog=8, reuse_address=True
        )
    return await asyncio.start_server(
        accepted,
        host,
        port,
        limit=DATA_READ_LIMIT,
        backlog=8,
        reuse_address=True,
        ssl=context,
        ssl_handshake_timeout=handshake_timeout,
    )


async def match_passive_listener_to_prot(session: Session) -> None:
    """After PROT C following PASV under PROT P, the listener still speaks TLS from the
    first byte while the client will now connect in clear: reopen it in clear on the
    same port.  (The other way round, a clear listener is upgraded at accept time.)"""
    if session.passive_server is None or not getattr(session, "passive_tls", False):
        return
    if session.data_protection == "P":
        return
    port = session.passive_server.sockets[0].getsockname()[1]
    await close_passive_listener(session)
    await open_passive_listener(session, prefer_port=port)


async def close_passive_listener(session: Session) -> None:
    listener = session.passive_server
    if listener is None:
        return
    session.passive_server = None
    listener.close()
    port = getattr(session, "passive_port_from_pool", None)
    if port is not None:
        session.server.data_port_pool.give_back(port)
        session.passive_port_from_pool = None


def _acceptable(session: Session, transport: Any) -> bool:
    """Only the control connection's peer may connect, once per transfer."""
    peer = transport.get_extra_info("peername") or ("", 0)
    if not same_host(peer[0], session.client_host) and not fxp_allowed(session):
        logger.warning(
            "session %s: refused data connection from %s (control peer is %s)",
            session.id, peer[0], session.client_host,
        )
        return False
    return session.data_connection is None and not session.closing


def accept_plain_data_connection(session: Session, protocol: DataProtocol) -> None:
    """Make a fresh plain TCP connection (accepted or, in active mode, connected)
    the session's data connection, upgrading it to TLS first under PROT P."""
    transport = protocol.transport
    if not _acceptable(session, transport):
        transport.close()
        return
    if session.data_protection == "P":
        # PROT P came after this clear-text listener was opened: upgrade in place
        task = asyncio.get_running_loop().create_task(_upgrade_plain(session, protocol))
        session.pending_data_tasks = getattr(session, "pending_data_tasks", set())
        session.pending_data_tasks.add(task)
        task.add_done_callback(session.pending_data_tasks.discard)
        return
    _tune_socket(transport)
    session.data_connection = ThrottleStreamIO(
        ProtocolReader(protocol),
        ProtocolWriter(protocol),
        throttles=session.data_throttles(),
        timeout=session.socket_timeout,
    )


async def _upgrade_plain(session: Session, protocol: DataProtocol) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=DATA_READ_LIMIT)
    stream_protocol = asyncio.StreamReaderProtocol(reader)
    server = session.server
    try:
        transport = await loop.start_tls(
            protocol.transport,
            stream_protocol,
            server.data_tls_context(session),
            server_side=True,
            ssl_handshake_timeout=server.tls_handshake_timeout,
        )
    except (OSError, TimeoutError, ConnectionError) as exc:
        logger.info("session %s: data TLS handshake failed: %s", session.id, exc)
        protocol.transport.close()
        return
    stream_protocol.connection_made(transport)
    writer = asyncio.StreamWriter(transport, stream_protocol, reader, loop)
    await accept_data_connection(session, reader, writer)


async def accept_data_connection(
    session: Session, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    if not _acceptable(session, writer):
        writer.close()
        return
    server = session.server
    if session.data_protection == "P":
        if writer.get_extra_info("ssl_object") is None:  # PROT P came after PASV
            context = server.data_tls_context(session)
            try:
                async with asyncio.timeout(server.tls_handshake_timeout):
                    await writer.start_tls(context)
            except (OSError, TimeoutError, ConnectionError) as exc:
                logger.info("session %s: data TLS handshake failed: %s", session.id, exc)
                writer.close()
                return
        if server.require_tls_session_reuse:
            ssl_object = writer.get_extra_info("ssl_object")
            if ssl_object is None or not ssl_object.session_reused:
                session.data_tls_refused = True
                writer.close()
                session.state_changed.set()
                return
    _tune_socket(writer)
    session.data_connection = ThrottleStreamIO(
        reader,
        writer,
        throttles=session.data_throttles(),
        timeout=session.socket_timeout,
    )


def _tune_socket(writer: Any) -> None:
    sock = writer.get_extra_info("socket")
    if sock is None:
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass


async def sendfile(writer: asyncio.StreamWriter, file: Any, offset: int, timeout: float | None) -> int:
    """Send ``file`` from ``offset`` to the end over a plain TCP writer, zero-copy.

    Works on any event loop: it waits for writability on a duplicate of the
    socket's descriptor and calls ``os.sendfile`` until the kernel says EOF.  The
    writer must have nothing buffered; the caller drains it first.
    """
    loop = asyncio.get_running_loop()
    sock = writer.get_extra_info("socket")
    in_fd = file.fileno()
    out_fd = os.dup(sock.fileno())
    sent_total = 0
    chunk = 16 * 1024 * 1024
    try:
        while True:
            try:
                sent = os.sendfile(out_fd, in_fd, offset, chunk)
            except BlockingIOError:
                await _writable(loop, out_fd, timeout)
                continue
            except InterruptedError:
                continue
            if sent == 0:
                return sent_total
            offset += sent
            sent_total += sent
    finally:
        os.close(out_fd)


async def _writable(loop: asyncio.AbstractEventLoop, fd: int, timeout: float | None) -> None:
    waiter = loop.create_future()

    def ready() -> None:
        if not waiter.done():
            waiter.set_result(None)

    loop.add_writer(fd, ready)
    try:
        if timeout is None:
            await waiter
        else:
            async with asyncio.timeout(timeout):
                await waiter
    finally:
        loop.remove_writer(fd)
