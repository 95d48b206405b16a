"""PORT and EPRT (RFC 959, RFC 2428): the client listens, the server connects.

The address is only recorded here; the connection is made when a transfer starts
(``TransferCommands._wait_data_connection``), after the 150 reply, as clients expect.
"""

from __future__ import annotations

from typing import Any

from gateway.protocol.addresses import UnsupportedProtocol, parse_eprt, parse_port
from gateway.server.activemode import active_refusal
from gateway.server.datachannel import close_passive_listener
from gateway.server.handlers.base import HandlerBase

__all__ = ("ActiveCommands",)


class ActiveCommands(HandlerBase):
    async def port(self, connection: Any, rest: str) -> bool:
        try:
            host, port = parse_port(rest)
        except ValueError:
            connection.response("501", "PORT needs h1,h2,h3,h4,p1,p2 (numbers 0-255)")
            return True
        return await self._set_active(connection, host, port, "PORT")

    async def eprt(self, connection: Any, rest: str) -> bool:
        try:
            host, port = parse_eprt(rest)
        except UnsupportedProtocol:
            connection.response("522", "network protocol not supported, use (1,2)")
            return True
        except ValueError:
            connection.response("501", "EPRT needs |proto|address|port|")
            return True
        return await self._set_active(connection, host, port, "EPRT")

    async def _set_active(self, connection: Any, host: str, port: int, verb: str) -> bool:
        if getattr(connection, "epsv_all", False):
            connection.response("503", f"{verb} not allowed after EPSV ALL")
            return True
        if connection.extra_workers:
            connection.response("503", "a transfer is in progress")
            return True
        refusal = active_refusal(connection, host, port)
        if refusal is not None:
            connection.response(*refusal)
            return True
        # active replaces passive: the next transfer connects out
        if connection.data_connection is not None:
            connection.data_connection.close()
            del connection.data_connection
        await close_passive_listener(connection)
        connection.active_address = (host, port)
        connection.response("200", f"{verb} command successful")
        return True
