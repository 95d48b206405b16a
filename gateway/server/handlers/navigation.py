"""PWD, CWD, CDUP (and their X-variants from RFC 775)."""

from __future__ import annotations

from typing import Any

from gateway.protocol.replies import quote_path
from gateway.server.handlers.base import HandlerBase

__all__ = ("NavigationCommands",)


class NavigationCommands(HandlerBase):
    async def pwd(self, connection: Any, rest: str) -> bool:
        connection.response("257", f"{quote_path(str(connection.current_directory))} is current directory")
        return True

    async def cwd(self, connection: Any, rest: str) -> bool:
        real, virtual = await self.resolve(connection, rest)
        path_io = connection.path_io
        if not await path_io.exists(real):
            connection.response("550", "path does not exists")
        elif not await path_io.is_dir(real):
            connection.response("550", "path is not a directory")
        elif await self.can(connection, virtual, "readable"):
            connection.current_directory = virtual
            connection.response("250", f"directory changed to {quote_path(str(virtual))}")
        return True

    async def cdup(self, connection: Any, rest: str) -> bool:
        return await self.cwd(connection, "..")

    async def xpwd(self, connection: Any, rest: str) -> bool:
        return await self.pwd(connection, rest)

    async def xcwd(self, connection: Any, rest: str) -> bool:
        return await self.cwd(connection, rest)

    async def xcup(self, connection: Any, rest: str) -> bool:
        return await self.cdup(connection, rest)
