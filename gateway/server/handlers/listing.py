"""LIST, NLST, MLSD over the data connection; MLST over the control connection.

Lines are formatted by ``gateway.protocol.listing`` and sent in batches as the
storage lister yields entries, so a huge directory starts flowing at once and
never sits whole in memory.
"""

from __future__ import annotations

import fnmatch
import time
from typing import Any

from gateway.protocol.commands import encode_text
from gateway.protocol.listing import format_list_line, strip_list_flags
from gateway.server.handlers.base import HandlerBase

__all__ = ("ListingCommands",)

#: Listing bytes gathered before one write to the data connection.
LISTING_BATCH = 64 * 1024
_GLOB_CHARS = frozenset("*?[")


class ListingCommands(HandlerBase):
    async def list(self, connection: Any, rest: str) -> bool:  # noqa: A003
        return await self._listing(connection, strip_list_flags(rest), "list")

    async def nlst(self, connection: Any, rest: str) -> bool:
        return await self._listing(connection, strip_list_flags(rest), "nlst")

    async def mlsd(self, connection: Any, rest: str) -> bool:
        return await self._listing(connection, rest, "mlsd")

    async def _listing_target(
        self, connection: Any, argument: str, globbing: bool
    ) -> tuple[Any, Any, bool, str | None] | None:
        """(real path, virtual path, is a directory, glob pattern) of what to list, or
        None once the refusal (550, or the permission reply) has been sent."""
        pattern = None
        if globbing and _GLOB_CHARS & set(argument.rpartition("/")[2]):
            head, slash, pattern = argument.rpartition("/")
            argument = (head or "/") if slash else ""
        real, virtual = await self.resolve(connection, argument)
        path_io = connection.path_io
        if not await path_io.exists(real):
            connection.response("550", "path does not exists")
            return None
        if not await self.can(connection, virtual, "readable"):
            return None
        return real, virtual, await path_io.is_dir(real), pattern

    async def _listing(self, connection: Any, argument: str, kind: str) -> bool:
        target = await self._listing_target(connection, argument, globbing=kind != "mlsd")
        if target is None:
            return True
        real, virtual, is_dir, pattern = target
        if kind == "mlsd" and not is_dir:
            connection.response("501", "MLSD needs a directory; use MLST for a file")
            return True
        encoding = connection.encoding

        async def body(stream: Any) -> None:
            batch: list[str] = []
            size = 0
            async for line in self._listing_lines(connection, real, is_dir, kind, pattern):
                batch.append(line)
                size += len(line)
                if size >= LISTING_BATCH:
                    await stream.write(encode_text("".join(batch), encoding))
                    batch.clear()
                    size = 0
            if batch:
                await stream.write(encode_text("".join(batch), encoding))

        return self.start_transfer(connection, body, "150", "listing started")  # type: ignore[attr-defined]

    async def _listing_lines(self, connection: Any, real: Any, is_dir: bool, kind: str, pattern: str | None) -> Any:
        path_io = connection.path_io
        now = time.time()
        if is_dir:
            entries = path_io.list(real)
        else:
            entries = _single(real)
        async for path in entries:
            name = path.name
            if pattern is not None and not fnmatch.fnmatchcase(name, pattern):
                continue
            if await path_io.lstat_is_symlink(path):
                try:
                    await self.ensure_confined(connection, path)
                except Exception:
                    continue  # a link out of the root is not shown
            if kind == "nlst":
                yield name + "\r\n"
                continue
            try:
                stats = await path_io.stat(path)
            except Exception:
                continue  # vanished, or a dangling link
            if kind == "list":
                yield format_list_line(name, stats, now=now) + "\r\n"
            else:
                yield await self._mlsx_line(connection, path, stats, None) + "\r\n"  # type: ignore[attr-defined]

    async def mlst(self, connection: Any, rest: str) -> bool:
        real, virtual = await self.resolve(connection, rest)
        if not await connection.path_io.exists(real):
            connection.response("550", "path does not exists")
            return True
        if not await self.can(connection, virtual, "readable"):
            return True
        stats = await connection.path_io.stat(real)
        line = await self._mlsx_line(connection, real, stats, str(virtual))  # type: ignore[attr-defined]
        connection.response("250", ["start", line, "end"], True)
        return True


async def _single(path: Any) -> Any:
    yield path
