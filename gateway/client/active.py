"""Active mode for ``Client``: listen, tell the server with EPRT/PORT, accept.

For servers (and firewalls) that allow only active mode, as old devices and some
mainframes do.  The listener is on the control connection's local address, lives
for one transfer, and accepts only the server's address: any other peer is dropped,
the same rule the server applies to passive connections.  Under TLS the client is
still the TLS client on the data connection (RFC 4217), whoever connected.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from gateway import errors
from gateway.protocol.addresses import format_eprt_argument, format_port_argument

if TYPE_CHECKING:
    from gateway.client.base import BaseClient

__all__ = ("ActiveListener", "DEFAULT_ACCEPT_TIMEOUT")

#: Seconds to wait for the server's connection when the client has no socket timeout.
DEFAULT_ACCEPT_TIMEOUT = 30.0


def _same_address(a: str, b: str) -> bool:
    import ipaddress

    try:
        ia, ib = ipaddress.ip_address(a.partition("%")[0]), ipaddress.ip_address(b.partition("%")[0])
    except ValueError:
        return a == b
    if isinstance(ia, ipaddress.IPv6Address) and ia.ipv4_mapped is not None:
        ia = ia.ipv4_mapped
    if isinstance(ib, ipaddress.IPv6Address) and ib.ipv4_mapped is not None:
        ib = ib.ipv4_mapped
    return ia == ib


class ActiveListener:
    """One transfer's listening socket.  ``announce`` sends EPRT or PORT;
    ``accept`` returns the server's connection as a (reader, writer) pair."""

    def __init__(self, client: BaseClient) -> None:
        self.client = client
        assert client.stream is not None, "connect() first"
        control = client.stream.writer
        local = control.get_extra_info("sockname")
        peer = control.get_extra_info("peername")
        self.server_address: str = peer[0] if peer else (client.server_host or "")
        family = socket.AF_INET6 if ":" in local[0] else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.sock.bind((local[0], 0))
            self.sock.listen(1)
            self.sock.setblocking(False)
        except OSError:
            self.sock.close()
            raise
        self.host, self.port = self.sock.getsockname()[:2]

    async def announce(self, commands: Iterable[str]) -> None:
        """EPRT, falling back to PORT (or the order given) when the server does not
        know a command (500/502); the first that works is kept for the session."""
        senders: dict[str, Callable[[], Awaitable[Any]]] = {
            "eprt": lambda: self.client.command("EPRT " + format_eprt_argument(self.host, self.port), "200"),
            "port": lambda: self.client.command("PORT " + format_port_argument(self.host, self.port), "200"),
        }
        names = [name.lower() for name in commands]
        if ":" in self.host and "port" in names and "eprt" in names:
            names.remove("port")  # PORT cannot carry an IPv6 address
        for index, name in enumerate(names):
            if name not in senders:
                raise ValueError(f"unknown active command {name!r}")
            try:
                await senders[name]()
                return
            except errors.StatusCodeError as e:
                if index == len(names) - 1 or not any(c.matches("50x") for c in e.received_codes):
                    raise
        raise ValueError("no active commands to try")

    async def accept(self, ssl: Any, timeout: float | None) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout or DEFAULT_ACCEPT_TIMEOUT):
            while True:
                conn, address = await loop.sock_accept(self.sock)
                if _same_address(address[0], self.server_address):
                    break
                conn.close()  # not the server: a third party guessing the port
            try:
                return await asyncio.open_connection(
                    sock=conn, ssl=ssl, server_hostname=self.client.server_host if ssl else None
                )
            except BaseException:
                conn.close()
                raise

    def close(self) -> None:
        self.sock.close()
