"""PASV, EPSV, PORT, EPRT: how the next transfer's data connection is made.

The session's :class:`~gateway.server.datachannel.DataChannel` does the work; these
handlers parse the argument and word the reply.  PORT/EPRT only record the address:
the connection is made when a transfer starts, after its 150 reply, as clients expect.
"""

from __future__ import annotations

import ipaddress
import logging

from gateway.protocol.addresses import (
    UnsupportedProtocol,
    format_epsv,
    format_pasv_reply_address,
    parse_eprt,
    parse_epsv_arg,
    parse_port,
)
from gateway.server.datachannel import DataChannelRefused
from gateway.server.handlers.base import HandlerBase
from gateway.server.session import Session

__all__ = ("DataPortCommands",)

logger = logging.getLogger("gateway.server")


class DataPortCommands(HandlerBase):
    async def pasv(self, connection: Session, rest: str) -> bool:
        if connection.data.epsv_all:
            connection.response("503", "PASV not allowed after EPSV ALL")
            return True
        host = self.ipv4_pasv_forced_response_address or connection.server_host
        if not ipv4_form(host):
            connection.response("503", "PASV is IPv4 only; this connection is IPv6: use EPSV")
            return True
        listening = await self._listen(connection)
        if listening is not None:
            port, state = listening
            address = format_pasv_reply_address(host, port)
            connection.response("227", f"Entering Passive Mode {address}; listen socket {state}")
        return True

    async def epsv(self, connection: Session, rest: str) -> bool:
        try:
            argument = parse_epsv_arg(rest)
        except ValueError:  # an unknown protocol number, or not one at all
            connection.response("522", "network protocol not supported, use (1,2) or ALL")
            return True
        if argument.upper() == "ALL":
            connection.data.epsv_all = True
            connection.response("200", "EPSV ALL accepted")
            return True
        ipv4 = ipv4_form(connection.server_host) is not None
        if argument and (argument == "1") != ipv4:
            connection.response("522", f"protocol not supported, use ({'1' if ipv4 else '2'})")
            return True
        listening = await self._listen(connection)
        if listening is not None:
            port, state = listening
            connection.response("229", f"Entering Extended Passive Mode {format_epsv(port)}; listen socket {state}")
        return True

    async def _listen(self, connection: Session) -> tuple[int, str] | None:
        """(port, "created" or "already exists"), or None once refused."""
        try:
            port, new = await connection.data.open_passive()
            return port, "created" if new else "already exists"
        except DataChannelRefused as refused:
            connection.response(refused.code, refused.text)
        except OSError as exc:
            logger.warning("session %s: passive listener failed: %s", connection.id, exc)
            connection.response("425", "can't open a data connection")
        return None

    async def port(self, connection: Session, rest: str) -> bool:
        try:
            host, port = parse_port(rest)
        except ValueError:
            connection.response("501", "PORT needs h1,h2,h3,h4,p1,p2 (numbers 0-255)")
            return True
        return await self._set_active(connection, host, port, "PORT")

    async def eprt(self, connection: Session, rest: str) -> bool:
        try:
            host, port = parse_eprt(rest)
        except UnsupportedProtocol:
            connection.response("522", "network protocol not supported, use (1,2)")
            return True
        except ValueError:
            connection.response("501", "EPRT needs |proto|address|port|")
            return True
        return await self._set_active(connection, host, port, "EPRT")

    async def _set_active(self, connection: Session, host: str, port: int, verb: str) -> bool:
        data = connection.data
        if data.epsv_all:
            connection.response("503", f"{verb} not allowed after EPSV ALL")
            return True
        if connection.extra_workers:
            connection.response("503", "a transfer is in progress")
            return True
        refused = data.active_refusal(host, port)
        if refused is not None:
            connection.response(refused.code, refused.text)
            return True
        await data.set_active(host, port)
        connection.response("200", f"{verb} command successful")
        return True


def ipv4_form(host: str) -> str | None:
    """The IPv4 form of an address (IPv4-mapped IPv6 included), or None."""
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv4Address):
        return str(address)
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return None
