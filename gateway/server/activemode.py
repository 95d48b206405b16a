"""Active mode: the server connects to the address a client gave with PORT/EPRT.

Secure by default (RFC 2577, the FTP bounce attack): the address must be the control
connection's peer and the port must not be privileged, otherwise the command is
refused before any connection is attempted.  ``Server(allow_fxp=...)`` lifts the
host check (and the port check) for trusted users, for site-to-site transfers.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from typing import TYPE_CHECKING

from gateway.server.datachannel import (
    DATA_READ_LIMIT,
    accept_data_connection,
    accept_plain_data_connection,
    fxp_allowed,
    same_host,
)
from gateway.server.dataprotocol import DataProtocol

if TYPE_CHECKING:
    from gateway.server.session import Session

__all__ = ("active_refusal", "connect_active", "ACTIVE_CONNECT_TIMEOUT", "FIRST_UNPRIVILEGED_PORT")

logger = logging.getLogger("gateway.server")

#: Seconds the server tries to reach a client's PORT/EPRT address.
ACTIVE_CONNECT_TIMEOUT = 10.0
#: Ports below this belong to system services; a PORT to one is a bounce attempt.
FIRST_UNPRIVILEGED_PORT = 1024


def _family(host: str) -> int:
    address = ipaddress.ip_address(host.partition("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
        return 6
    return 4


def active_refusal(session: Session, host: str, port: int) -> tuple[str, str] | None:
    """The reply refusing a PORT/EPRT address, or None when it may be used."""
    if fxp_allowed(session):
        return None
    if _family(host) != _family(session.client_host):
        use = "(1)" if _family(session.client_host) == 4 else "(2)"
        return "522", f"network protocol not supported, use {use}"
    if not same_host(host, session.client_host):
        logger.warning(
            "session %s: refused PORT/EPRT to %s (control peer is %s)",
            session.id, host, session.client_host,
        )
        return "501", "data connections go only to the control connection's address"
    if port < FIRST_UNPRIVILEGED_PORT:
        logger.warning("session %s: refused PORT/EPRT to privileged port %s", session.id, port)
        return "501", f"port {port} is privileged; use a port >= {FIRST_UNPRIVILEGED_PORT}"
    return None


async def connect_active(session: Session, host: str, port: int) -> bool:
    """Connect to the client's data port and hand the connection to the session.

    Returns False (after logging) when the client cannot be reached; the caller
    answers 425.  Under PROT P the connection is upgraded with the server as the TLS
    server, as RFC 4217 requires whichever side connects.
    """
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if _family(host) == 6 and ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        async with asyncio.timeout(ACTIVE_CONNECT_TIMEOUT):
            await loop.sock_connect(sock, (host, port))
    except (OSError, TimeoutError) as exc:
        sock.close()
        logger.info("session %s: active connection to %s:%s failed: %s", session.id, host, port, exc)
        return False
    except BaseException:  # ABOR or shutdown while connecting
        sock.close()
        raise
    if session.closing or session.data_connection is not None:
        sock.close()
        return False
    server = session.server
    if session.data_protection != "P":
        _, protocol = await loop.connect_accepted_socket(DataProtocol, sock)
        accept_plain_data_connection(session, protocol)
        return True
    # TLS from the first byte, with the server as the TLS server: the client's
    # ClientHello must not be read as clear text before the handshake starts.
    reader = asyncio.StreamReader(limit=DATA_READ_LIMIT)
    stream_protocol = asyncio.StreamReaderProtocol(reader)
    try:
        transport, _ = await loop.connect_accepted_socket(
            lambda: stream_protocol,
            sock,
            ssl=server.data_tls_context(session),
            ssl_handshake_timeout=server.tls_handshake_timeout,
        )
    except (OSError, TimeoutError, ConnectionError) as exc:
        sock.close()
        logger.info("session %s: active data TLS handshake failed: %s", session.id, exc)
        return False
    except BaseException:
        sock.close()
        raise
    writer = asyncio.StreamWriter(transport, stream_protocol, reader, loop)
    await accept_data_connection(session, reader, writer)
    return session.data_connection is not None or getattr(session, "data_tls_refused", False)
