"""PWD, CWD, CDUP (and their X-variants from RFC 775)."""

from __future__ import annotations

import stat as stat_module

from gateway.protocol.listing import stat_mode
from gateway.protocol.replies import quote_path
from gateway.server.handlers.base import HandlerBase
from gateway.server.session import Session

__all__ = ("NavigationCommands",)


class NavigationCommands(HandlerBase):
    async def pwd(self, connection: Session, rest: str) -> bool:
        connection.response("257", f"{quote_path(str(connection.current_directory))} is current directory")
        return True

    async def cwd(self, connection: Session, rest: str) -> bool:
        real, virtual = await self.resolve(connection, rest)
        stats = await connection.path_io.stat(real)  # a missing path: storage says 550
        if not stat_module.S_ISDIR(stat_mode(stats)):
            connection.response("550", "path is not a directory")
            return True
        connection.current_directory = virtual
        connection.response("250", f"directory changed to {quote_path(str(virtual))}")
        return True

    async def cdup(self, connection: Session, rest: str) -> bool:
        return await self.cwd(connection, "..")

    async def xpwd(self, connection: Session, rest: str) -> bool:
        return await self.pwd(connection, rest)

    async def xcwd(self, connection: Session, rest: str) -> bool:
        return await self.cwd(connection, rest)

    async def xcup(self, connection: Session, rest: str) -> bool:
        return await self.cdup(connection, rest)
