"""LIST, NLST, MLSD over the data connection; MLST over the control connection.

Lines are formatted by ``gateway.protocol.listing`` (or by a subclass's
``build_list_string``/``build_mlsx_string``, aioftp's hooks) and sent in batches as
the storage lister yields entries, so a huge directory starts flowing at once and
never sits whole in memory.  Names an account's file rules hide are left out.
"""

from __future__ import annotations

import asyncio
import fnmatch
import stat as stat_module
import time
from collections.abc import AsyncIterator
from pathlib import PurePosixPath
from typing import Any

from gateway.protocol.commands import encode_text, split_glob, strip_list_flags
from gateway.protocol.listing import format_list_line, format_nlst_line, listing_name
from gateway.server.filepolicy import file_rules
from gateway.server.handlers.base import HandlerBase
from gateway.server.session import Session
from gateway.streams import ThrottleStreamIO

__all__ = ("ListingCommands", "ListingTarget")

#: Entries listed between two chances for other sessions to run.
_YIELD_EVERY = 32
#: Listing bytes gathered before one write to the data connection.
LISTING_BATCH = 64 * 1024

ListingTarget = tuple[Any, PurePosixPath, bool, "str | None"]


class ListingCommands(HandlerBase):
    async def list(self, connection: Session, rest: str) -> bool:  # noqa: A003
        return await self._listing(connection, strip_list_flags(rest), "list")

    async def nlst(self, connection: Session, rest: str) -> bool:
        return await self._listing(connection, strip_list_flags(rest), "nlst")

    async def mlsd(self, connection: Session, rest: str) -> bool:
        return await self._listing(connection, rest, "mlsd")

    async def listing_target(self, connection: Session, argument: str, globbing: bool) -> ListingTarget:
        """(real path, virtual path, is a directory, glob pattern) of what to list.

        One stat says both that the path exists (else storage raises: 550) and
        whether it is a directory; the working directory needs none.
        """
        pattern = None
        if globbing:
            argument, pattern = split_glob(argument)
        real, virtual = await self.resolve(connection, argument)
        if not argument and pattern is None:
            # the working directory was a directory when CWD checked it: no stat (on
            # S3 a request) before listing it; gone since, the listing says so itself
            return real, virtual, True, None
        stats = await connection.path_io.stat(real)
        if hasattr(stats, "st_mode"):
            return real, virtual, stat_module.S_ISDIR(stats.st_mode), pattern
        # a minimal stat object (a custom path I/O): ask storage directly
        return real, virtual, bool(await connection.path_io.is_dir(real)), pattern

    async def _listing(self, connection: Session, argument: str, kind: str) -> bool:
        real, virtual, is_dir, pattern = await self.listing_target(
            connection, argument, globbing=kind != "mlsd"
        )
        if kind == "mlsd" and not is_dir:
            connection.response("501", "MLSD needs a directory; use MLST for a file")
            return True
        encoding = connection.encoding

        skipped_stat = not argument and pattern is None

        async def body(stream: ThrottleStreamIO) -> None:
            checked = not skipped_stat
            batch: list[str] = []
            size = 0
            async for line in self.listing_lines(connection, real, is_dir, kind, pattern, virtual):
                checked = True
                batch.append(line)
                size += len(line)
                if size >= LISTING_BATCH:
                    await stream.write(encode_text("".join(batch), encoding))
                    batch.clear()
                    size = 0
            if batch:
                await stream.write(encode_text("".join(batch), encoding))
            if not checked:
                # nothing listed in the working directory: is it still there?
                await connection.path_io.stat(real)

        return self.start_transfer(connection, body, "150", "listing started")

    async def listing_lines(
        self, connection: Session, real: Any, is_dir: bool, kind: str, pattern: str | None,
        virtual: PurePosixPath | None = None,
    ) -> AsyncIterator[str]:
        """The lines of a listing ("list", "nlst" or "mlsd"), CRLF-terminated;
        ``virtual`` is the listed path as the client named it."""
        path_io = connection.path_io
        now = time.time()
        hooks = self._list_hooks_overridden()
        entries = path_io.list(real) if is_dir else _single(real)
        # the listed path itself was refused before if hidden: only entries are matched
        rules = file_rules(connection.user) if is_dir else None
        if rules is not None and not rules.hides:
            rules = None
        directory = virtual
        if rules is not None and directory is None:
            directory = connection.virtual_of(real)
        seen = 0
        async for path in entries:
            seen += 1
            if not seen % _YIELD_EVERY:
                # storage on local disk answers without suspending: let other
                # sessions run while a huge directory is listed
                await asyncio.sleep(0)
            name = path.name
            if pattern is not None and not fnmatch.fnmatchcase(name, pattern):
                continue
            if rules is not None and directory is not None and rules.hidden_entry(directory, name):
                continue
            if await path_io.lstat_is_symlink(path):
                try:
                    await self.ensure_confined(connection, path)
                except Exception:
                    continue  # a link out of the root is not shown
            if kind == "nlst":
                yield format_nlst_line(name) + "\r\n"
                continue
            try:
                if hooks:
                    # a subclass's line holds the name as it is: neutralised here too
                    if kind == "list":
                        line = await self.build_list_string(connection, path)
                    else:
                        line = await self.build_mlsx_string(connection, path)
                    yield listing_name(line) + "\r\n"
                    continue
                stats = await path_io.stat(path)
            except Exception:
                continue  # vanished, or a dangling link
            if kind == "list":
                yield format_list_line(name, stats, now=now) + "\r\n"
            else:
                entry = None
                if virtual is not None:
                    entry = virtual / name if is_dir else virtual
                yield await self.mlsx_line(connection, path, stats, None, entry) + "\r\n"

    async def mlst(self, connection: Session, rest: str) -> bool:
        real, virtual = await self.resolve(connection, rest)
        stats = await connection.path_io.stat(real)
        line = await self.mlsx_line(connection, real, stats, str(virtual), virtual)
        connection.response("250", ["start", line, "end"], True)
        return True


async def _single(path: Any) -> AsyncIterator[Any]:
    yield path
