"""TLS 1.3 session tickets: none on data connections, as before on control connections.

A client that never reads an upload's data connection (rclone) closes it with the
server's NewSessionTicket messages unread, and its kernel's RST truncates the
upload.  ``gateway.server.datatls`` makes the SSL objects of data connections with
``num_tickets = 0`` while the context (shared with the control connection, whose
tickets the data connection resumes) keeps issuing tickets everywhere else.

Real asyncio servers on loopback, real TLS 1.3.  The client is a blocking
``SSLSocket`` in a worker thread (it can pass ``session=``) whose context counts the
NewSessionTicket handshake messages it reads (``SSLContext._msg_callback``).  The
server sends one byte of application data right after the handshake and the client
reads it: TLS records arrive in order and the server writes its tickets as the last
step of its handshake, so by then every ticket the connection will ever carry has
been counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import ftplib
import os
import socket
import ssl
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme

from gateway.server.datatls import data_tls_scope, prepare_data_tls

from .conftest import HOST, STEP, in_thread, retr_bytes

#: TLS record content type and handshake message type of a NewSessionTicket (RFC 8446).
HANDSHAKE = 22
NEW_SESSION_TICKET = 4

MODES = ("listener", "start_tls", "active")


# ----------------------------------------------------------------------------- client side


class TicketCounter:
    """Counts the NewSessionTicket messages each client connection reads."""

    def __init__(self, context: ssl.SSLContext) -> None:
        # weak keys: an id() would be reused by the next connection's socket
        self.counts: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        context._msg_callback = self._seen  # type: ignore[attr-defined]

    def _seen(self, conn: Any, direction: str, version: Any, content_type: Any,
              msg_type: Any, data: bytes) -> None:
        if direction == "read" and content_type == HANDSHAKE and msg_type == NEW_SESSION_TICKET:
            self.counts[conn] = self.counts.get(conn, 0) + 1

    def of(self, conn: ssl.SSLSocket) -> int:
        return self.counts.get(conn, 0)


@dataclass(frozen=True)
class Seen:
    """What one client connection observed."""

    tickets: int
    session: ssl.SSLSession | None
    reused: bool
    version: str | None


def _client_on(raw: socket.socket, context: ssl.SSLContext, counter: TicketCounter,
               session: ssl.SSLSession | None) -> Seen:
    with context.wrap_socket(raw, server_hostname=HOST, session=session) as tls:
        assert tls.recv(1) == b"x"  # after the tickets, if any: all counted now
        return Seen(counter.of(tls), tls.session, bool(tls.session_reused), tls.version())


def connect_client(port: int, context: ssl.SSLContext, counter: TicketCounter, *,
                   session: ssl.SSLSession | None = None, upgrade: bool = False) -> Seen:
    """Connect (TLS from the first byte, or after the server's ``go`` line)."""
    with socket.create_connection((HOST, port), timeout=STEP) as raw:
        if upgrade:
            assert raw.recv(3) == b"go\n"
        return _client_on(raw, context, counter, session)


def accept_client(listener: socket.socket, context: ssl.SSLContext, counter: TicketCounter,
                  *, session: ssl.SSLSession | None = None) -> Seen:
    """The client side of active mode: the server connects, the client stays TLS client."""
    raw, _ = listener.accept()
    raw.settimeout(STEP)
    with raw:
        return _client_on(raw, context, counter, session)


# ----------------------------------------------------------------------------- server side


@dataclass
class TlsServer:
    """Server ends of TLS connections made the ways the data channel makes them."""

    context: ssl.SSLContext
    reused: asyncio.Queue[bool] = field(default_factory=asyncio.Queue)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    listeners: list[asyncio.base_events.Server] = field(default_factory=list)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ssl_object = writer.get_extra_info("ssl_object")
        assert ssl_object is not None
        self.reused.put_nowait(ssl_object.session_reused)
        writer.write(b"x")
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.drain()
            await reader.read()  # until the client closes
        writer.close()

    def _track(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def control_listener(self) -> int:
        """A TLS listener outside any data scope: the control connection's way."""
        listener = await asyncio.start_server(self._serve, HOST, 0, ssl=self.context)
        self.listeners.append(listener)
        return int(listener.sockets[0].getsockname()[1])

    async def data_listener(self) -> int:
        """A passive data listener with TLS from the first byte, created in the scope."""
        with data_tls_scope(self.context):
            listener = await asyncio.start_server(self._serve, HOST, 0, ssl=self.context)
        self.listeners.append(listener)
        return int(listener.sockets[0].getsockname()[1])

    async def upgrade_listener(self, *, listener_in_scope: bool) -> int:
        """A clear-text data listener whose connections are upgraded with start_tls in
        the scope (PROT P after PASV).  uvloop makes the SSL object in the context of
        the transport being upgraded, so there the listener must be in the scope too."""

        async def upgrade(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            transport: Any = writer.transport
            transport.pause_reading()  # the ClientHello stays in the socket
            writer.write(b"go\n")
            with data_tls_scope(self.context):
                await writer.start_tls(self.context)
            await self._serve(reader, writer)

        scope = data_tls_scope() if listener_in_scope else contextlib.nullcontext()
        with scope:
            listener = await asyncio.start_server(upgrade, HOST, 0)
        self.listeners.append(listener)
        return int(listener.sockets[0].getsockname()[1])

    async def connect_active(self, address: tuple[str, int]) -> None:
        """Active mode: connect to the client, then TLS server from the first byte."""
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        await loop.sock_connect(sock, address)
        reader = asyncio.StreamReader()
        protocol = asyncio.StreamReaderProtocol(reader)
        with data_tls_scope(self.context):
            transport, _ = await loop.connect_accepted_socket(
                lambda: protocol, sock, ssl=self.context
            )
        self._track(reader, asyncio.StreamWriter(transport, protocol, reader, loop))

    async def close(self) -> None:
        for listener in self.listeners:
            listener.close()
        async with asyncio.timeout(STEP):
            while self.tasks:
                await asyncio.gather(*self.tasks, return_exceptions=True)


async def data_connection(server: TlsServer, mode: str, client: ssl.SSLContext,
                          counter: TicketCounter, session: ssl.SSLSession | None = None,
                          *, upgrade_listener_in_scope: bool = False) -> tuple[Seen, bool]:
    """One data connection made the ``mode`` way: what the client saw, and whether the
    server side resumed a session."""
    if mode == "listener":
        port = await server.data_listener()
        seen = await in_thread(connect_client, port, client, counter, session=session)
    elif mode == "start_tls":
        port = await server.upgrade_listener(listener_in_scope=upgrade_listener_in_scope)
        seen = await in_thread(connect_client, port, client, counter, session=session,
                               upgrade=True)
    else:
        with socket.create_server((HOST, 0)) as listener:
            waiting = asyncio.create_task(
                in_thread(accept_client, listener, client, counter, session=session)
            )
            await server.connect_active(listener.getsockname())
            seen = await waiting
    async with asyncio.timeout(STEP):
        return seen, await server.reused.get()


async def control_connection(server: TlsServer, client: ssl.SSLContext,
                             counter: TicketCounter) -> tuple[Seen, bool]:
    port = await server.control_listener()
    seen = await in_thread(connect_client, port, client, counter)
    async with asyncio.timeout(STEP):
        return seen, await server.reused.get()


# ----------------------------------------------------------------------------- fixtures


def new_server_context(ca: trustme.CA) -> ssl.SSLContext:
    """A fresh context per test: the hook installed on it must not reach other tests."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(HOST, "localhost").configure_cert(context)
    return context


#: A client context and the counter installed on it.
Client = tuple[ssl.SSLContext, TicketCounter]


def new_client_context(ca: trustme.CA) -> Client:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_3
    return context, TicketCounter(context)


@pytest.fixture
def client(ca: trustme.CA) -> Client:
    return new_client_context(ca)


@pytest.fixture
async def tls_server(ca: trustme.CA) -> AsyncIterator[TlsServer]:
    server = TlsServer(new_server_context(ca))
    yield server
    await server.close()


# ----------------------------------------------------------------------------- tests


@pytest.mark.parametrize("mode", MODES)
async def test_data_connection_gets_no_tickets(tls_server: TlsServer, client: Client,
                                               mode: str) -> None:
    context, counter = client
    seen, reused = await data_connection(tls_server, mode, context, counter)
    assert seen.version == "TLSv1.3"
    assert seen.tickets == 0
    assert not reused and not seen.reused


async def test_control_connection_still_gets_tickets(tls_server: TlsServer, client: Client) -> None:
    context, counter = client
    assert prepare_data_tls(tls_server.context)  # the hook is on, the scope is not
    seen, _ = await control_connection(tls_server, context, counter)
    assert seen.version == "TLSv1.3"
    assert seen.tickets == tls_server.context.num_tickets == 2
    assert seen.session is not None and seen.session.has_ticket


@pytest.mark.parametrize("mode", MODES)
async def test_data_connection_resumes_control_session(tls_server: TlsServer, client: Client,
                                                       mode: str) -> None:
    context, counter = client
    control, _ = await control_connection(tls_server, context, counter)
    assert control.session is not None and control.session.has_ticket

    data, server_reused = await data_connection(tls_server, mode, context, counter,
                                                session=control.session)
    assert server_reused, "the data connection did not resume the control connection's session"
    assert data.reused
    assert data.tickets == 0


async def test_resumed_connection_outside_the_scope_gets_a_ticket(tls_server: TlsServer,
                                                                  client: Client) -> None:
    """The observable is sound: OpenSSL sends a ticket on a resumed TLS 1.3 connection
    (the one rclone leaves unread), and the counter sees it."""
    context, counter = client
    control, _ = await control_connection(tls_server, context, counter)
    port = await tls_server.control_listener()
    seen = await in_thread(connect_client, port, context, counter, session=control.session)
    async with asyncio.timeout(STEP):
        assert await tls_server.reused.get()
    assert seen.reused
    assert seen.tickets >= 1


async def test_no_leak_to_later_connections(tls_server: TlsServer, client: Client) -> None:
    """After data connections of every kind, the context still has its num_tickets and
    the next control connections (made by the same task that opened the scopes, and
    from a listener created after them) get tickets."""
    context, counter = client
    server_context = tls_server.context
    early_control_port = await tls_server.control_listener()  # created before any scope
    for mode in MODES:
        seen, _ = await data_connection(tls_server, mode, context, counter)
        assert seen.tickets == 0
        assert server_context.num_tickets == 2

    late = await control_connection(tls_server, context, counter)
    assert late[0].tickets == 2
    early = await in_thread(connect_client, early_control_port, context, counter)
    async with asyncio.timeout(STEP):
        await tls_server.reused.get()
    assert early.tickets == 2
    assert server_context.num_tickets == 2


def test_num_tickets_restored_when_creation_fails(ca: trustme.CA) -> None:
    context = new_server_context(ca)
    context.num_tickets = 3
    with data_tls_scope(context), pytest.raises(TypeError):
        # OpenSSL's side refuses what is not a MemoryBIO: creation fails midway
        context.wrap_bio(object(), object(), server_side=True)  # type: ignore[arg-type]
    assert context.num_tickets == 3


def test_prepare_is_idempotent_and_keeps_a_custom_sslobject_class(ca: trustme.CA) -> None:
    class Custom(ssl.SSLObject):
        pass

    context = new_server_context(ca)
    context.sslobject_class = Custom
    assert prepare_data_tls(context)
    hooked = context.sslobject_class
    assert hooked is not Custom and issubclass(hooked, Custom)
    assert prepare_data_tls(context)
    assert context.sslobject_class is hooked  # not wrapped twice
    other = new_server_context(ca)
    other.sslobject_class = Custom
    prepare_data_tls(other)
    assert other.sslobject_class is hooked  # one class per base, not per context

    with data_tls_scope(context):
        made = context.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_side=True)
    assert isinstance(made, Custom)
    assert context.num_tickets == 2


def test_a_context_that_is_not_a_server_context_is_left_alone() -> None:
    with pytest.warns(DeprecationWarning):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS)
    before = context.sslobject_class
    assert not prepare_data_tls(context)
    assert context.sslobject_class is before
    with data_tls_scope(context):  # still usable: the marker is simply not acted on
        context.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_side=True)


def test_uvloop(ca: trustme.CA) -> None:
    """The same on uvloop, which creates the SSL object from ``connection_made`` in the
    context of the transport (hence the clear-text listener in the scope)."""
    import uvloop

    async def scenario() -> None:
        assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
        server = TlsServer(new_server_context(ca))
        context, counter = new_client_context(ca)
        try:
            control, _ = await control_connection(server, context, counter)
            assert control.tickets == 2
            for mode in MODES:
                for session in (None, control.session):
                    seen, reused = await data_connection(
                        server, mode, context, counter, session, upgrade_listener_in_scope=True
                    )
                    assert seen.tickets == 0, (mode, session)
                    assert reused == seen.reused == (session is not None), (mode, session)
            late, _ = await control_connection(server, context, counter)
            assert late.tickets == 2
            assert server.context.num_tickets == 2
        finally:
            await server.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(asyncio.wait_for(scenario(), 60))



# ----------------------------------------------------------------------------- the server


class ResumingFTP_TLS(ftplib.FTP_TLS):
    """ftplib resuming the control connection's TLS session on every data connection
    (as rclone, curl and FileZilla do), and keeping what each data connection saw."""

    def __init__(self, counter: TicketCounter, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.counter = counter
        self.data_sockets: list[tuple[ssl.SSLSocket, bool]] = []

    def ntransfercmd(self, cmd: str, rest: int | str | None = None) -> tuple[socket.socket, int | None]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:  # type: ignore[attr-defined]
            assert isinstance(self.sock, ssl.SSLSocket)
            conn = self.context.wrap_socket(conn, server_hostname=self.host,
                                            session=self.sock.session)
            self.data_sockets.append((conn, bool(conn.session_reused)))
        return conn, size

    def data_tickets(self) -> list[tuple[int, bool]]:
        """Per data connection: tickets read and whether the session was resumed."""
        return [(self.counter.of(conn), reused) for conn, reused in self.data_sockets]


@pytest.mark.parametrize("path", ["passive", "passive-upgraded", "active"])
async def test_gateway_data_connections_carry_no_tickets(
    make_server: Callable[..., Any], ca: trustme.CA, root: Path, path: str
) -> None:
    """Through the server itself, with ``require_tls_session_reuse``: every way a
    protected data connection is made resumes the control session and reads no
    ticket, while the control connection got the context's two."""
    payload = os.urandom(300_000)
    (root / "blob").write_bytes(payload)
    server_context = new_server_context(ca)
    server = await make_server(tls_context=server_context, require_tls_session_reuse=True)
    context, counter = new_client_context(ca)

    def scenario() -> tuple[int, list[tuple[int, bool]], bytes]:
        ftp = ResumingFTP_TLS(counter, context=context, timeout=STEP)
        ftp.connect(HOST, server.server_port)
        ftp.auth()
        ftp.login()
        assert isinstance(ftp.sock, ssl.SSLSocket) and ftp.sock.version() == "TLSv1.3"
        ftp.sendcmd("NOOP")  # the control connection's tickets have been read
        control_tickets = counter.of(ftp.sock)
        ftp.prot_p()
        if path == "active":
            ftp.set_pasv(False)
            received = retr_bytes(ftp, "blob")
        elif path == "passive":
            received = retr_bytes(ftp, "blob")
        else:  # PASV under PROT C, PROT P after it: the clear listener upgrades
            assert ftp.sendcmd("PROT C").startswith("200")
            host, port = ftplib.parse227(ftp.sendcmd("PASV"))
            assert ftp.sendcmd("PROT P").startswith("200")
            raw = socket.create_connection((host, port), timeout=STEP)
            conn = context.wrap_socket(raw, server_hostname=HOST, session=ftp.sock.session)
            with conn:
                ftp.data_sockets.append((conn, bool(conn.session_reused)))
                assert ftp.sendcmd("RETR blob").startswith("150")
                chunks = []
                while chunk := conn.recv(65536):
                    chunks.append(chunk)
                received = b"".join(chunks)
            assert ftp.voidresp().startswith("226")
        ftp.quit()
        return control_tickets, ftp.data_tickets(), received

    control_tickets, data, received = await in_thread(scenario)
    assert received == payload
    assert control_tickets == 2
    assert data == [(0, True)]
    assert server_context.num_tickets == 2
