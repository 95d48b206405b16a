"""Connections through a TCP load balancer that speaks the PROXY protocol.

On a listener with ``proxy_protocol`` on, a connection from a trusted balancer
starts with a PROXY header naming the client it relays; that client's address is
the session's (logs, bans, limits, network rules, the passive-connection check).
The header is read before anything else happens on the connection: before the 220
greeting, and on an implicit-TLS listener before the TLS handshake (the balancer
relays the client's TLS bytes after its own clear-text header).

The rules, for control and passive data connections alike:

* a trusted balancer must send a valid header at once (within the policy's
  timeout): without one the connection is closed and the reason logged;
* anyone else is served as a direct client, under its own address; a control
  connection from it that starts with a PROXY header is closed (and logged), since
  only a trusted balancer may say who the client is.  (A data connection's bytes
  are file content; its peer is checked as it is.)

How the header is read: the connection's first protocol, :class:`HeaderReader`,
offers the transport a buffer exactly as large as the bytes the parser says the
header still needs at least, so no byte after the header is ever read.  Those stay
in the socket for the FTP session, or for the TLS handshake, which cannot be handed
bytes already read.  Once the header is complete the reader stops reading and hands
the transport to the protocol that serves the connection.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from gateway.protocol.proxyheader import (
    Incomplete,
    ProxyHeader,
    ProxyHeaderError,
    parse_proxy_header,
    starts_like_header,
)
from gateway.users.addresses import Network, client_address, parse_networks

__all__ = (
    "DEFAULT_HEADER_TIMEOUT",
    "PROXY_MODES",
    "HeaderReader",
    "Origin",
    "ProxiedListener",
    "ProxyPolicy",
    "hand_over",
)

logger = logging.getLogger("gateway.server")

#: Seconds a trusted balancer has to send its header: it sends it the moment it
#: connects, so this only bounds a balancer (or a port scan from its network) that
#: sends nothing.
DEFAULT_HEADER_TIMEOUT = 5.0
#: The listener settings and the header versions each accepts.
PROXY_MODES: dict[str, frozenset[int]] = {
    "v1": frozenset({1}),
    "v2": frozenset({2}),
    "any": frozenset({1, 2}),
}

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class ProxyPolicy:
    """Which header versions a listener accepts, and from whom."""

    versions: frozenset[int]
    trusted: tuple[Network, ...]
    timeout: float = DEFAULT_HEADER_TIMEOUT

    @classmethod
    def create(
        cls, mode: str, trusted: Iterable[str] | str | None, timeout: float = DEFAULT_HEADER_TIMEOUT
    ) -> ProxyPolicy | None:
        """The policy for a listener setting ("off", "v1", "v2", "any"); None when off.

        :raises ValueError: an unknown mode, a bad network, or a mode without any
            trusted balancer (nobody could then send a header)
        """
        if mode == "off":
            return None
        versions = PROXY_MODES.get(mode)
        if versions is None:
            raise ValueError(f"proxy_protocol must be off, v1, v2 or any; got {mode!r}")
        networks = parse_networks(trusted)
        if not networks:
            raise ValueError(
                "proxy_protocol is on but proxy_trusted is empty: list the balancers' "
                "addresses or networks"
            )
        if timeout <= 0:
            raise ValueError(f"the PROXY header timeout must be positive, got {timeout!r}")
        return cls(versions, networks, timeout)

    def trusts(self, host: str) -> bool:
        """Whether ``host`` is a balancer allowed to say who the client is."""
        address = client_address(host)
        if address is None:
            return False
        return any(address.version == net.version and address in net for net in self.trusted)

    def describe(self) -> str:
        versions = "/".join(f"v{v}" for v in sorted(self.versions))
        return f"PROXY protocol {versions} headers of {', '.join(str(n) for n in self.trusted)}"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a connection comes from: the client it serves, and its TCP peer."""

    #: the client: from the header when a trusted balancer relays it, else the peer
    client: Address
    #: the TCP peer (the balancer, for a relayed connection)
    peer: Address
    #: the balancer's header; None for a direct connection
    header: ProxyHeader | None = None

    @property
    def relayed(self) -> bool:
        """The client's address came from a balancer's header."""
        return self.header is not None and self.header.source is not None

    @property
    def balancer_own(self) -> bool:
        """The balancer's own connection (v2 LOCAL: a health check)."""
        return self.header is not None and self.header.local

    def describe(self) -> str:
        """For logs: ``203.0.113.9:50123 via balancer 10.0.0.2``."""
        host = self.client[0]
        text = f"[{host}]:{self.client[1]}" if ":" in host else f"{host}:{self.client[1]}"
        if self.relayed:
            return f"{text} via balancer {self.peer[0]}"
        if self.balancer_own:
            return f"{text} (the balancer's own connection, PROXY LOCAL)"
        if self.header is not None:
            return f"{text} (balancer; its header names no client address)"
        return text


def peer_of(transport: Any) -> Address:
    peer = transport.get_extra_info("peername")
    if not peer:
        return ("", 0)
    return (str(peer[0]), int(peer[1]))


def hand_over(transport: Any, protocol: asyncio.BaseProtocol) -> None:
    """Let ``protocol`` serve the connection from now on (it is told it is connected).

    Reading resumes before it is told, so that it may pause again at once: a
    connection about to be upgraded to TLS must keep the handshake in the socket.
    (``transport`` is typed loosely: uvloop's transports are not registered as
    asyncio's classes.)
    """
    transport.set_protocol(protocol)
    if not transport.is_closing():
        transport.resume_reading()
    protocol.connection_made(transport)


class HeaderReader(asyncio.BufferedProtocol):
    """The first protocol of a connection on a listener with the PROXY protocol.

    A trusted peer's header is read (exactly: see the module docstring) and
    ``on_ready(transport, origin)`` is called once it is complete, with reading
    paused.  Anyone else's connection is handed on at once, as a direct one.
    ``on_ready`` must hand the transport to the protocol that serves it.  A trusted
    peer that sends no valid header in time is disconnected, and the reason logged.
    """

    def __init__(
        self,
        policy: ProxyPolicy,
        on_ready: Callable[[Any, Origin], None],
        *,
        label: str = "connection",
        pending: set[HeaderReader] | None = None,
    ) -> None:
        self.policy = policy
        self._on_ready = on_ready
        self._label = label
        self._pending = pending
        #: the connection's transport (asyncio's or uvloop's)
        self.transport: Any = None
        self.peer: Address = ("", 0)
        self._received = bytearray()
        self._want = 1
        self._scratch = bytearray(1)
        self._timer: asyncio.TimerHandle | None = None
        self._done = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.peer = peer_of(transport)
        if not self.peer[0]:
            # reset before it could be served (uvloop then no longer knows the peer):
            # nothing to serve, and nobody to judge
            self._done = True
            logger.debug("%s closed before it was served", self._label)
            transport.close()
            return
        if not self.policy.trusts(self.peer[0]):
            self._finish(Origin(self.peer, self.peer))
            return
        if self._pending is not None:
            self._pending.add(self)
        first = parse_proxy_header(b"", versions=self.policy.versions)
        assert isinstance(first, Incomplete)
        self._want = first.missing
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.policy.timeout, self._timed_out)

    def get_buffer(self, sizehint: int) -> memoryview:
        if len(self._scratch) != self._want:
            self._scratch = bytearray(self._want)
        return memoryview(self._scratch)

    def buffer_updated(self, nbytes: int) -> None:
        if self._done:
            return
        self._received += self._scratch[:nbytes]
        try:
            result = parse_proxy_header(self._received, versions=self.policy.versions)
        except ProxyHeaderError as exc:
            self.refuse(f"not a valid PROXY header: {exc}")
            return
        if isinstance(result, Incomplete):
            self._want = result.missing
            return
        client = result.source if result.source is not None else self.peer
        self._finish(Origin(client, self.peer, result))

    def eof_received(self) -> bool:
        if not self._done:
            if self._received:
                self.refuse(f"closed after {len(self._received)} bytes of a PROXY header")
            else:
                # a balancer's plain TCP health check connects and closes: not news
                self.refuse("closed before sending a PROXY header", level=logging.DEBUG)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._done:
            self._done = True
            self._forget()

    def _timed_out(self) -> None:
        self._timer = None
        if not self._done:
            got = f" (got {len(self._received)} bytes of one)" if self._received else ""
            self.refuse(f"no PROXY header within {self.policy.timeout:g} s{got}")

    def refuse(self, reason: str, level: int = logging.WARNING) -> None:
        """Close the connection, saying why."""
        if self._done:
            return
        self._done = True
        self._forget()
        logger.log(level, "%s from trusted balancer %s:%s refused: %s",
                   self._label, self.peer[0], self.peer[1], reason)
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """The server closes: drop a connection still sending its header."""
        if not self._done:
            self._done = True
            self._forget()
            if self.transport is not None:
                self.transport.abort()

    def _finish(self, origin: Origin) -> None:
        """Hand the connection on, paused: the next protocol resumes reading (or a
        TLS upgrade does).  On uvloop a pause from inside ``connection_made`` (a direct
        client's connection) does not hold: TLS with the PROXY protocol needs
        asyncio's event loop, as TLS does anyway (see ``Server.start``)."""
        self._done = True
        self._forget()
        self.transport.pause_reading()
        self._on_ready(self.transport, origin)

    def _forget(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending is not None:
            self._pending.discard(self)


class _GuardedStreamProtocol(asyncio.StreamReaderProtocol):
    """A direct client's control connection: closed if it starts with a PROXY header.

    Only a trusted balancer may name the client; a header from anyone else is an
    attempt to pass for another address (or a balancer missing from
    ``proxy_trusted``), and is refused rather than read as FTP.  The first bytes are
    held back only while they could still be the start of a header.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        connected: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
        peer: Address,
        timeout: float,
    ) -> None:
        super().__init__(reader, connected)
        self._peer = peer
        self._timeout = timeout
        self._head: bytes | None = b""  # None once the first bytes are judged
        self._release: asyncio.TimerHandle | None = None
        self._own_transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._own_transport = transport
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._head is None:
            super().data_received(data)
            return
        head = self._head + data
        verdict = starts_like_header(head)
        if verdict is None:
            # a prefix of a header so far; a client's line that is one ("\r\n") is
            # let through after the timeout
            self._head = head
            if self._release is None:
                loop = asyncio.get_running_loop()
                self._release = loop.call_later(self._timeout, self._let_through)
            return
        self._judged()
        if verdict:
            logger.warning(
                "connection from %s:%s refused: it sent a PROXY header but is not a "
                "trusted balancer (proxy_trusted)", self._peer[0], self._peer[1],
            )
            if self._own_transport is not None:
                self._own_transport.close()
            return
        super().data_received(head)

    def eof_received(self) -> bool | None:
        head = self._judged()
        if head:
            super().data_received(head)
        return super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._judged()
        super().connection_lost(exc)

    def _let_through(self) -> None:
        self._release = None
        head = self._judged()
        if head:
            super().data_received(head)

    def _judged(self) -> bytes:
        """Stop watching; what was held back."""
        head, self._head = self._head or b"", None
        if self._release is not None:
            self._release.cancel()
            self._release = None
        return head


#: Serves one control connection: (reader, writer, where it comes from).
Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter, Origin], Awaitable[None]]


class ProxiedListener:
    """The protocol factory of a control listener with the PROXY protocol on.

    Each accepted connection gets a :class:`HeaderReader`; once it knows the
    client, the connection becomes an asyncio stream (TLS first on an implicit-TLS
    listener) and ``serve(reader, writer, origin)`` runs as its task.
    """

    def __init__(
        self,
        policy: ProxyPolicy,
        serve: Serve,
        *,
        ssl_context: ssl.SSLContext | None = None,
        handshake_timeout: float = 30.0,
        limit: int = 2**16,
    ) -> None:
        self.policy = policy
        self._serve = serve
        self._ssl = ssl_context
        self._handshake_timeout = handshake_timeout
        self._limit = limit
        self._reading: set[HeaderReader] = set()
        self._handshakes: set[asyncio.Task[None]] = set()

    def __call__(self) -> HeaderReader:
        return HeaderReader(self.policy, self._ready, label="control connection",
                            pending=self._reading)

    def _ready(self, transport: Any, origin: Origin) -> None:
        if self._ssl is not None:
            task = asyncio.get_running_loop().create_task(self._start_tls(transport, origin))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)
            return
        reader = asyncio.StreamReader(limit=self._limit)
        protocol: asyncio.StreamReaderProtocol
        if origin.header is None:
            protocol = _GuardedStreamProtocol(
                reader, self._connected(origin), origin.peer, self.policy.timeout
            )
        else:
            protocol = asyncio.StreamReaderProtocol(reader, self._connected(origin))
        hand_over(transport, protocol)

    def _connected(
        self, origin: Origin
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._serve(reader, writer, origin)

        return connected

    async def _start_tls(self, transport: Any, origin: Origin) -> None:
        """TLS after the header (and at once for a direct client: the ClientHello
        is the first thing it sends; a PROXY header from it fails the handshake)."""
        assert self._ssl is not None
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=self._limit)
        protocol = asyncio.StreamReaderProtocol(reader, self._connected(origin))
        try:
            tls_transport = await loop.start_tls(
                transport, protocol, self._ssl, server_side=True,
                ssl_handshake_timeout=self._handshake_timeout,
            )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            logger.info("TLS handshake with %s failed: %s", origin.describe(), exc or type(exc).__name__)
            transport.close()
            return
        except asyncio.CancelledError:
            transport.abort()
            raise
        if tls_transport is None:  # the connection went away meanwhile
            transport.close()
            return
        protocol.connection_made(tls_transport)

    def close(self) -> None:
        """The server closes: connections not yet serving (header, handshake) go."""
        for reader in list(self._reading):
            reader.abort()
        for task in list(self._handshakes):
            task.cancel()

    @property
    def pending(self) -> int:
        """Connections still sending their header or in their TLS handshake."""
        return len(self._reading) + len(self._handshakes)
