"""MKD, RMD, DELE, RNFR/RNTO, SIZE, MDTM: operations on names."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from gateway.protocol.listing import format_mdtm
from gateway.protocol.replies import quote_path
from gateway.server.handlers.base import HandlerBase

__all__ = ("FileCommands",)

ROOT = PurePosixPath("/")


class FileCommands(HandlerBase):
    async def mkd(self, connection: Any, rest: str) -> bool:
        real, virtual = await self.resolve(connection, rest)
        if not await self.can(connection, virtual, "writable"):
            return True
        if await connection.path_io.exists(real):
            quirks = getattr(self, "device_quirks", None)
            if quirks is not None and quirks.mkd_existing_ok and await connection.path_io.is_dir(real):
                connection.response("257", f"{quote_path(str(virtual))} already exists")
            else:
                connection.response("550", "path already exists")
            return True
        await connection.path_io.mkdir(real, parents=True)
        connection.response("257", f"{quote_path(str(virtual))} created")
        return True

    async def rmd(self, connection: Any, rest: str) -> bool:
        real, virtual = await self.resolve(connection, rest)
        path_io = connection.path_io
        if virtual == ROOT:
            connection.response("550", "can't remove the root directory")
        elif not await path_io.exists(real):
            connection.response("550", "path does not exists")
        elif not await path_io.is_dir(real):
            connection.response("550", "path is not a directory")
        elif await self.can(connection, virtual, "writable"):
            await path_io.rmdir(real)
            if _is_within(virtual, connection.current_directory):
                connection.current_directory = virtual.parent
            connection.response("250", "directory removed")
        return True

    async def dele(self, connection: Any, rest: str) -> bool:
        real, virtual = await self.resolve(connection, rest)
        path_io = connection.path_io
        if not await path_io.exists(real):
            connection.response("550", "path does not exists")
        elif not await path_io.is_file(real):
            connection.response("550", "path is not a file")
        elif await self.can(connection, virtual, "writable"):
            await path_io.unlink(real)
            connection.response("250", "file deleted")
        return True

    async def rnfr(self, connection: Any, rest: str) -> bool:
        connection.rename_from = None
        real, virtual = await self.resolve(connection, rest)
        if virtual == ROOT:
            connection.response("550", "can't rename the root directory")
        elif not await connection.path_io.exists(real):
            connection.response("550", "path does not exists")
        elif await self.can(connection, virtual, "writable"):
            connection.rename_from = real
            connection.rename_from_virtual = virtual
            connection.response("350", "ready for RNTO")
        return True

    async def rnto(self, connection: Any, rest: str) -> bool:
        source = connection.rename_from
        if source is None:
            connection.response("503", "bad sequence of commands (use RNFR firstly)")
            return True
        connection.rename_from = None
        real, virtual = await self.resolve(connection, rest)
        source_virtual = getattr(connection, "rename_from_virtual", None)
        if source_virtual is not None and virtual != source_virtual and _is_within(source_virtual, virtual):
            connection.response("553", "can't move a directory into itself")
        elif virtual == ROOT:
            connection.response("553", "can't replace the root directory")
        elif await self.can(connection, virtual, "writable"):
            if await connection.path_io.is_dir(real) and real != source:
                connection.response("550", "destination is a directory")
                return True
            await connection.path_io.rename(source, real)
            connection.response("250", "renamed")
        return True

    async def size(self, connection: Any, rest: str) -> bool:
        real, virtual = await self.resolve(connection, rest)
        if not await connection.path_io.is_file(real):
            connection.response("550", "path is not a file or does not exist")
        elif await self.can(connection, virtual, "readable"):
            stats = await connection.path_io.stat(real)
            connection.response("213", str(stats.st_size))
        return True

    async def mdtm(self, connection: Any, rest: str) -> bool:
        real, virtual = await self.resolve(connection, rest)
        if not await connection.path_io.is_file(real):
            connection.response("550", "path is not a file or does not exist")
        elif await self.can(connection, virtual, "readable"):
            stats = await connection.path_io.stat(real)
            connection.response("213", format_mdtm(stats.st_mtime))
        return True

    async def xmkd(self, connection: Any, rest: str) -> bool:
        return await self.mkd(connection, rest)

    async def xrmd(self, connection: Any, rest: str) -> bool:
        return await self.rmd(connection, rest)


def _is_within(root: PurePosixPath, path: PurePosixPath) -> bool:
    return path == root or root in path.parents
