"""MKD, RMD, DELE, RNFR/RNTO, SIZE, MDTM: operations on names.

Each asks storage to act and lets a failure map to its reply (550 for a missing
path, "not a directory", "directory not empty"...); the user's right on the path
was checked from the command table before the handler ran.
"""

from __future__ import annotations

import logging
import stat as stat_module
from pathlib import PurePosixPath
from typing import Any

from gateway.protocol.listing import format_mdtm, stat_mode
from gateway.protocol.paths import NAME_REFUSED, name_allowed
from gateway.protocol.replies import quote_path
from gateway.server.handlers.base import HandlerBase
from gateway.server.session import Session
from gateway.users.rules import stricter_rule_within

__all__ = ("FileCommands",)

logger = logging.getLogger("gateway.server")

ROOT = PurePosixPath("/")


class FileCommands(HandlerBase):
    async def mkd(self, connection: Session, rest: str) -> bool:
        if not name_allowed(rest):
            connection.response("553", NAME_REFUSED)
            return True
        real, virtual = await self.resolve(connection, rest)
        path_io = connection.path_io
        try:
            await path_io.mkdir(real, parents=True)
        except Exception as exc:
            if not (self.device_quirks.mkd_existing_ok and _caused_by(exc, FileExistsError)):
                raise
            if not await path_io.is_dir(real):
                raise
            connection.response("257", f"{quote_path(str(virtual))} already exists")
            return True
        await self.emit(connection, self.operation(connection, "mkdir", path=str(virtual), real=str(real)))
        connection.response("257", f"{quote_path(str(virtual))} created")
        return True

    async def rmd(self, connection: Session, rest: str) -> bool:
        real, virtual = await self.resolve(connection, rest)
        if virtual == ROOT:
            connection.response("550", "can't remove the root directory")
            return True
        if not await self.rules_allow_moving(connection, virtual):
            return True
        await connection.path_io.rmdir(real)
        if _is_within(virtual, connection.current_directory):
            connection.current_directory = virtual.parent
        await self.emit(connection, self.operation(connection, "rmdir", path=str(virtual), real=str(real)))
        connection.response("250", "directory removed")
        return True

    async def dele(self, connection: Session, rest: str) -> bool:
        real, virtual = await self.resolve(connection, rest)
        await connection.path_io.unlink(real)
        await self.emit(connection, self.operation(connection, "delete", path=str(virtual), real=str(real)))
        connection.response("250", "file deleted")
        return True

    async def rnfr(self, connection: Session, rest: str) -> bool:
        login = connection.login
        login.rename_from = login.rename_from_virtual = None
        real, virtual = await self.resolve(connection, rest)
        if virtual == ROOT:
            connection.response("550", "can't rename the root directory")
            return True
        if not await connection.path_io.exists(real):
            connection.response("550", "no such file or directory")
            return True
        if not await self.rules_allow_moving(connection, virtual):
            return True
        login.rename_from = real
        login.rename_from_virtual = virtual
        connection.response("350", "ready for RNTO")
        return True

    async def rnto(self, connection: Session, rest: str) -> bool:
        login = connection.login
        source, source_virtual = login.rename_from, login.rename_from_virtual
        login.rename_from = login.rename_from_virtual = None
        if not name_allowed(rest):
            connection.response("553", NAME_REFUSED)
            return True
        real, virtual = await self.resolve(connection, rest)
        if source_virtual is not None and virtual != source_virtual and _is_within(source_virtual, virtual):
            connection.response("553", "can't move a directory into itself")
            return True
        if virtual == ROOT:
            connection.response("553", "can't replace the root directory")
            return True
        if not await self.rules_allow_moving(connection, virtual):
            return True
        if source_virtual is not None and not await self.rules_allow_moving(connection, source_virtual):
            return True
        if real != source and await connection.path_io.is_dir(real):
            connection.response("550", "destination is a directory")
            return True
        await connection.path_io.rename(source, real)
        await self.emit(connection, self.operation(
            connection, "rename", path=None if source_virtual is None else str(source_virtual),
            real=None if source is None else str(source), target=str(virtual), target_real=str(real),
        ))
        connection.response("250", "renamed")
        return True

    async def size(self, connection: Session, rest: str) -> bool:
        real, _virtual = await self.resolve(connection, rest)
        stats = await connection.path_io.stat(real)
        if stat_module.S_ISDIR(stat_mode(stats)):
            connection.response("550", "path is not a file")
        else:
            connection.response("213", str(stats.st_size))
        return True

    async def mdtm(self, connection: Session, rest: str) -> bool:
        real, _virtual = await self.resolve(connection, rest)
        stats = await connection.path_io.stat(real)
        if stat_module.S_ISDIR(stat_mode(stats)):
            connection.response("550", "path is not a file")
        else:
            connection.response("213", format_mdtm(stats.st_mtime))
        return True

    async def xmkd(self, connection: Session, rest: str) -> bool:
        return await self.mkd(connection, rest)

    async def xrmd(self, connection: Session, rest: str) -> bool:
        return await self.rmd(connection, rest)

    async def rules_allow_moving(self, connection: Session, virtual: PurePosixPath) -> bool:
        """Whether ``virtual`` may be renamed or removed as a whole: refused (550) when
        a stricter permission rule lies at or below it, since moving the tree would
        carry what that rule protects out of its reach (or into it)."""
        stricter = await stricter_rule_within(connection.user, virtual)
        if stricter is None:
            return True
        logger.info("session %s: %s refused: stricter rule at %s", connection.id, virtual, stricter.path)
        connection.response("550", "permission denied")
        return False


def _is_within(root: PurePosixPath, path: PurePosixPath) -> bool:
    return path == root or root in path.parents


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    cause: Any = getattr(exc, "cause", None) or exc.__cause__ or exc
    return isinstance(cause, kind)
