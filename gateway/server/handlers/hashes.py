"""HASH, RANG, OPTS HASH and the legacy XCRC, XMD5, XSHA, XSHA1, XSHA256, XSHA512.

A checksum is answered from what storage keeps with the file when that is valid for
the whole file (an upload's, computed as it streamed, see ``transfer``), else computed
by reading the file: in bounded blocks, hashed off the event loop
(``gateway.server.hashing``), and kept with the file afterwards when the whole file
was read, so the next request is answered without reading it again.

Hashing runs as the session's background work, as a transfer does: the control
connection stays responsive, ABOR stops it (426, then 226), and so does the end of
the session.  Read permission and confinement are checked as for RETR.

Replies (draft-bryan-ftpext-hash-02 for HASH, common practice for the others):

* ``213 SHA-256 0-1023 <hex> <pathname>`` (HASH: the algorithm, the inclusive byte
  range hashed, the digest, the path as given); ``250 <HEX>`` for the legacy commands;
* 450: the file has an upload in progress, the session is already busy with a
  transfer or another checksum, or too many checksums are being computed;
* 501: a bad argument (RANG, positions), a range starting after the end of the file,
  an unknown algorithm for OPTS HASH; 504: RANG before anything but HASH;
* 550: no such file, no permission (and, for the legacy commands, a directory or
  positions beyond the end); 553: HASH of a directory (the draft's code);
* 556: the file is larger than ``hash_max_size`` and no checksum is stored for it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from backends.checksums import Stored
from backends.errors import PathIOError
from gateway.protocol.commands import COMMANDS
from gateway.protocol.hashes import (
    LEGACY_COMMANDS,
    Algorithm,
    ByteRange,
    algorithm_named,
    format_hash_reply,
    format_legacy_reply,
    parse_legacy_argument,
    parse_rang,
    rang_range,
    range_after,
)
from gateway.server.handlers.base import HandlerBase
from gateway.server.handlers.transfer import writer_key
from gateway.server.hashing import Digests, HashTooLarge, hash_stream
from gateway.server.preconditions import refusal
from gateway.server.session import Session
from gateway.server.storage_errors import reply_for_storage_error

__all__ = ("HashCommands", "hash_option", "range_refusal")

logger = logging.getLogger("gateway.server")

#: Checksums computed by reading files at once, process-wide; beyond, 450 (the draft's
#: "busy, try again"): each one reads a whole file and keeps a core busy.
MAX_COMPUTING = max(2, 2 * (os.cpu_count() or 1))


class _Computing:
    """How many checksums are being computed by reading a file, process-wide."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running = 0

    def take(self) -> bool:
        if self.running >= self.limit:
            return False
        self.running += 1
        return True

    def give(self) -> None:
        self.running -= 1


COMPUTING = _Computing(MAX_COMPUTING)


@dataclass(frozen=True, slots=True)
class _Request:
    """One checksum to answer."""

    verb: str  # as sent, upper case, for messages
    algorithm: Algorithm
    byte_range: ByteRange
    pathname: str  # as the client gave it, for the HASH reply
    legacy: bool


class _Refused(Exception):
    """The request is answered with this reply instead of a checksum."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


def hash_option(session: Session, value: str) -> tuple[str, str]:
    """``OPTS HASH [<algorithm>]``: the session's algorithm, or choose another."""
    if not value.strip():
        return "200", session.login.hash_algorithm.name
    algorithm = algorithm_named(value)
    if algorithm is None:
        return "501", "Unknown algorithm, current selection not changed"
    session.login.hash_algorithm = algorithm
    return "200", algorithm.name


def range_refusal(session: Session, verb: str) -> tuple[str, str] | None:
    """What a command does to a pending RANG selection (see ``range_after``): the
    reply refusing it when the selection cannot apply to it, else None."""
    login = session.login
    if login.byte_range is None:
        return None
    effect = range_after(verb)
    if effect == "keep":
        return None
    login.byte_range = None
    if effect == "refuse":
        return "504", f"RANG applies to HASH only, not to {verb.upper()}; the range is reset"
    return None


class HashCommands(HandlerBase):
    # -- the commands ---------------------------------------------------------------------
    async def hash(self, connection: Session, rest: str) -> bool:
        login = connection.login
        selected, login.byte_range = login.byte_range, None
        request = _Request("HASH", login.hash_algorithm, rang_range(selected), rest, legacy=False)
        return await self._checksum(connection, rest, request)

    async def rang(self, connection: Session, rest: str) -> bool:
        login = connection.login
        try:
            login.byte_range = parse_rang(rest)
        except ValueError as exc:
            login.byte_range = None
            connection.response("501", f"{exc}; the range is reset to whole files")
            return True
        if login.byte_range is None:
            connection.response("350", "byte range reset: whole files")
        else:
            start, end = login.byte_range
            connection.response("350", f"Restarting at {start}. End byte range at {end}, for HASH")
        return True

    async def xcrc(self, connection: Session, rest: str) -> bool:
        return await self._legacy(connection, rest, "xcrc")

    async def xmd5(self, connection: Session, rest: str) -> bool:
        return await self._legacy(connection, rest, "xmd5")

    async def xsha(self, connection: Session, rest: str) -> bool:
        return await self._legacy(connection, rest, "xsha")

    async def xsha1(self, connection: Session, rest: str) -> bool:
        return await self._legacy(connection, rest, "xsha1")

    async def xsha256(self, connection: Session, rest: str) -> bool:
        return await self._legacy(connection, rest, "xsha256")

    async def xsha512(self, connection: Session, rest: str) -> bool:
        return await self._legacy(connection, rest, "xsha512")

    async def _legacy(self, connection: Session, rest: str, verb: str) -> bool:
        try:
            path, byte_range = parse_legacy_argument(rest)
        except ValueError as exc:
            connection.response("501", f"{verb.upper()} <pathname> [<start> <end>]: {exc}")
            return True
        if path != rest:
            # the table checked the whole argument; the path is only part of it
            refused = await refusal(connection, COMMANDS[verb], path,
                                    require_tls=self.require_tls, get_paths=self.get_paths)
            if refused is not None:
                connection.response(*refused)
                return True
        request = _Request(verb.upper(), LEGACY_COMMANDS[verb], byte_range, path, legacy=True)
        return await self._checksum(connection, path, request)

    # -- the work -----------------------------------------------------------------------------
    async def _checksum(self, connection: Session, path: str, request: _Request) -> bool:
        """Start answering ``request`` about ``path`` as the session's background work."""
        if connection.extra_workers:
            connection.response("450", "busy with a transfer or a checksum: try again when it ends")
            return True
        real, virtual = await self.resolve(connection, path)
        if writer_key(connection.path_io, real) in self.active_writers:
            connection.response("450", "file busy: an upload to it is in progress")
            return True
        task = connection.loop.create_task(self._answer(connection, real, virtual, request))
        connection.extra_workers.add(task)
        return True

    async def _answer(
        self, connection: Session, real: Any, virtual: PurePosixPath, request: _Request
    ) -> None:
        try:
            digest, start, count = await self._digest(connection, real, request)
        except asyncio.CancelledError:
            if not connection.closing:  # ABOR: RFC 959's 426 for the command, then 226
                connection.response("426", f"{request.verb} aborted")
                connection.response("226", "abort successful")
            raise
        except _Refused as refused:
            connection.response(refused.code, refused.text)
            return
        except PathIOError as exc:
            connection.response(*self._storage_failure(exc, request))
            return
        if request.legacy:
            connection.response("250", format_legacy_reply(digest))
        else:
            reply = format_hash_reply(request.algorithm, start, count, digest, request.pathname)
            connection.response("213", reply)

    @staticmethod
    def _storage_failure(exc: PathIOError, request: _Request) -> tuple[str, str]:
        if isinstance(exc.cause, IsADirectoryError):
            if request.legacy:
                return "550", "not a regular file"
            return "553", "the hash of a directory is not defined"
        return reply_for_storage_error(exc)

    async def _digest(
        self, connection: Session, real: Any, request: _Request
    ) -> tuple[str, int, int]:
        """(hex digest, first byte, bytes hashed): the stored value when it covers the
        request, else computed by reading the file."""
        path_io = connection.path_io
        key = request.algorithm.key
        byte_range = request.byte_range
        lookup = getattr(path_io, "stored_checksums", None)  # aioftp-style path-ios lack it
        stored = await lookup(real) if lookup is not None else None
        size = stored.size if stored is not None else None
        if size is not None:
            self._check_range(request, size)
        if stored is not None and key in stored.values and byte_range.covers(stored.size):
            return stored.values[key], 0, stored.size
        limit = self.hash_max_size
        if limit is not None and size is not None:
            wanted = size - byte_range.start
            if byte_range.count is not None:
                wanted = min(wanted, byte_range.count)
            if wanted > limit:
                raise _Refused("556", f"the file is larger than this server hashes ({limit} bytes)")
        if not COMPUTING.take():
            raise _Refused("450", "too many checksums are being computed: try again later")
        try:
            return await self._compute(connection, real, request, stored)
        finally:
            COMPUTING.give()

    @staticmethod
    def _check_range(request: _Request, size: int) -> None:
        byte_range = request.byte_range
        if byte_range.start > size:
            raise _Refused("550" if request.legacy else "501",
                           f"the range starts after the end of the file ({size} bytes)")
        if request.legacy and byte_range.count is not None and byte_range.start + byte_range.count > size:
            raise _Refused("550", f"the positions go past the end of the file ({size} bytes)")

    async def _compute(
        self, connection: Session, real: Any, request: _Request, stored: Stored | None
    ) -> tuple[str, int, int]:
        byte_range = request.byte_range
        known = stored.values if stored is not None else {}
        algorithms = [request.algorithm]
        if byte_range.start == 0:
            # the file is read anyway: what uploads compute comes along, to be kept
            algorithms += [a for a in self.upload_checksums
                           if a is not request.algorithm and a.key not in known]
        digests = Digests(algorithms)
        async with connection.path_io.open(real, "rb") as file:
            if byte_range.start:
                await file.seek(byte_range.start)
            try:
                count = await hash_stream(file.read, digests, byte_range, limit=self.hash_max_size)
            except HashTooLarge:
                limit = self.hash_max_size
                raise _Refused("556", f"the file is larger than this server hashes ({limit} bytes)") from None
            values = digests.values()
            read_through = (byte_range.count is None or count < byte_range.count
                            or (stored is not None and count == stored.size))
            keep = getattr(file, "keep_checksums", None)  # aioftp-style path I/Os lack it
            if keep is not None and byte_range.start == 0 and read_through:
                await keep(values)  # the whole file: answered from it next time
        if request.legacy and byte_range.count is not None and count < byte_range.count:
            raise _Refused("550", "the positions go past the end of the file")
        if not request.legacy and byte_range.start and not count and byte_range.count:
            # nothing at or after the start: the file ends before it
            raise _Refused("501", "the range starts after the end of the file")
        return values[request.algorithm.key], byte_range.start, count
