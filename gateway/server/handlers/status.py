"""STAT, REIN, HOST and the refused CCC: commands about the session itself."""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import AsyncIterator

from gateway.protocol.commands import strip_list_flags
from gateway.server.handlers.base import HandlerBase
from gateway.server.session import Session
from gateway.server.watchdog import restart_watchdog

__all__ = ("StatusCommands",)

#: How long REIN lets a running transfer finish (RFC 959: it completes first).
REIN_GRACE = 30.0
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")


class StatusCommands(HandlerBase):
    async def stat(self, connection: Session, rest: str) -> bool:
        argument = rest.strip()
        if not argument:
            connection.response("211", self._status_lines(connection), True)
            return True
        return await self._stat_path(connection, strip_list_flags(rest))

    def _status_lines(self, connection: Session) -> list[str]:
        if connection.logged:
            who = f"logged in as {getattr(connection.user, 'login', None) or 'anonymous'}"
        elif connection.user is not None:
            who = "waiting for the password"
        else:
            who = "not logged in"
        if connection.extra_workers:
            data = "a transfer is in progress"
        elif connection.data.active_address is not None:
            data = "active mode (PORT/EPRT) set"
        elif connection.data.listening:
            data = "passive mode listening"
        else:
            data = "no data connection"
        kind = "ASCII" if connection.transfer_type == "A" else "BINARY"
        return [
            "gateway FTP server status:",
            f"Connected to {connection.client_host}",
            who.capitalize(),
            f"TYPE: {kind}; STRUcture: File; MODE: Stream",
            f"Control connection: {'TLS' if connection.tls else 'clear'}; "
            f"data protection: {'private' if connection.data.protection == 'P' else 'clear'}",
            f"Encoding: {connection.encoding}",
            data.capitalize(),
            "End of status",
        ]

    async def _stat_path(self, connection: Session, argument: str) -> bool:
        """RFC 959 STAT with a pathname: a LIST over the control connection (212 for a
        directory, 213 for a file), for clients that avoid a data connection."""
        real, virtual, is_dir, pattern = await self.listing_target(connection, argument, globbing=True)

        async def lines() -> AsyncIterator[str]:
            async for line in self.listing_lines(connection, real, is_dir, "list", pattern, virtual):
                yield line.rstrip("\r\n")

        # streamed as the directory is read: a huge one never sits whole in memory
        await connection.stream_reply(
            "212" if is_dir else "213", f"Status of {virtual}:", lines(), "End of status"
        )
        return True

    async def rein(self, connection: Session, rest: str) -> bool:
        workers = list(connection.extra_workers)
        if workers:
            await asyncio.wait(workers, timeout=REIN_GRACE)
        await self.end_login(connection)
        await connection.data.reset()
        connection.new_login()
        connection.login_started = connection.loop.time()
        restart_watchdog(connection)
        connection.response("220", "service ready for new user")
        return True

    async def host(self, connection: Session, rest: str) -> bool:
        """RFC 7151: name the virtual host before USER.  One host is served, so any
        well-formed name is accepted; the point is that clients sending HOST work."""
        if connection.user is not None or connection.logged:
            connection.response("503", "HOST must come before USER")
            return True
        name = rest.strip()
        if not _valid_host(name):
            connection.response("501", "HOST needs a domain name or an [IP literal]")
            return True
        connection.login.virtual_host = name
        connection.response("220", f"host {name} accepted")
        return True

    async def ccc(self, connection: Session, rest: str) -> bool:
        # RFC 4217 lets a server refuse to drop TLS; credentials and paths would
        # follow in clear text, so it is always refused.
        connection.response("534", "CCC refused: the control connection stays protected")
        return True


def _valid_host(name: str) -> bool:
    if name.startswith("[") and name.endswith("]"):
        try:
            ipaddress.ip_address(name[1:-1])
        except ValueError:
            return False
        return True
    return bool(_HOSTNAME.match(name))
