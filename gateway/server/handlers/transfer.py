"""Data transfers: TYPE, MODE, STRU, PASV, EPSV, REST, RETR, STOR, APPE, ABOR.

A transfer runs as a task in ``connection.extra_workers`` so the control
connection stays responsive (ABOR, NOOP) while bytes flow.  Storage writes are
transactional (see ``backends``): a transfer that ends in an error or an abort
leaves no partial file where a complete one is expected.

An upload that writes a whole file (STOR, STOU; not APPE or REST + STOR) is hashed
as it streams (``Server(upload_checksums=...)``, see ``gateway.server.hashing``): its
checksums go to storage with the file and onto the transfer record.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Hashable
from pathlib import PurePosixPath
from typing import Any

from backends.base import AsyncPathIOContext
from gateway.protocol.ascii import FromNetwork, ToNetwork
from gateway.protocol.paths import NAME_REFUSED, name_allowed
from gateway.protocol.types import parse_mode, parse_rest, parse_stru, parse_type
from gateway.server.datachannel import DataChannelRefused
from gateway.server.events import TransferRecord
from gateway.server.handlers.base import HandlerBase
from gateway.server.hashing import UploadHasher
from gateway.server.sendfile import sendfile
from gateway.server.session import Session
from gateway.streams import ThrottleStreamIO

__all__ = ("TransferCommands", "DATA_BLOCK_SIZE")

logger = logging.getLogger("gateway.server")

#: Bytes moved per storage call; large so a transfer costs few Python-level steps.
DATA_BLOCK_SIZE = 262144
#: How long a finished data connection may take to close before we stop waiting.
DATA_CLOSE_TIMEOUT = 10.0
#: Random names STOU tries before giving up (a clash needs 2**32 luck each time).
STOU_ATTEMPTS = 8

Body = Callable[[ThrottleStreamIO], Awaitable[None]]


class TransferCommands(HandlerBase):
    # -- representation ------------------------------------------------------------------
    async def type(self, connection: Any, rest: str) -> bool:
        try:
            connection.transfer_type = parse_type(rest)
        except ValueError:
            # 502 as aioftp answers (RFC 959 would also allow 504)
            connection.response("502", f"type {rest.strip()!r} not supported")
            return True
        connection.response("200", f"type set to {connection.transfer_type}")
        return True

    async def mode(self, connection: Any, rest: str) -> bool:
        try:
            parse_mode(rest)
        except ValueError:
            connection.response("504", "only MODE S is supported")
            return True
        connection.response("200", "mode S")
        return True

    async def stru(self, connection: Any, rest: str) -> bool:
        try:
            parse_stru(rest)
        except ValueError:
            connection.response("504", "only STRU F is supported")
            return True
        connection.response("200", "structure F")
        return True

    async def rest(self, connection: Any, rest: str) -> bool:
        try:
            connection.restart_offset = parse_rest(rest)
        except ValueError:
            connection.response("501", "REST needs a byte offset in ASCII digits, at most 2**63-1")
            return True
        connection.response("350", f"restarting at {connection.restart_offset}")
        return True

    # -- transfers -------------------------------------------------------------------------
    async def retr(self, connection: Session, rest: str) -> bool:
        real, virtual = await self.resolve(connection, rest)
        offset, connection.restart_offset = connection.restart_offset, 0
        # act, then map the failure: a missing file or a directory is the backend's
        # error (550), with no exists/is_file requests first
        file = await connection.path_io.open(real, "rb")
        ascii_mode = connection.transfer_type == "A"
        record = self.transfer_record(connection, "RETR", virtual)
        record.real = str(real)
        timeout = connection.data.settings.socket_timeout

        async def body(stream: ThrottleStreamIO) -> None:
            if offset:
                await file.seek(offset)
            raw = file.raw_file
            if (
                raw is not None
                and not ascii_mode
                and not stream.throttles
                and stream.writer.get_extra_info("ssl_object") is None
                and stream.writer.get_extra_info("socket") is not None
            ):
                await stream.writer.drain()
                record.size += await sendfile(stream.writer, raw, offset, timeout)
                return
            convert = ToNetwork() if ascii_mode else None
            block = _block_size(self.block_size, stream)
            while True:
                data = await file.read(block)
                if not data:
                    break
                out = convert.feed(data) if convert else data
                await stream.write(out)
                record.size += len(out)

        return self.start_transfer(connection, body, "150", "data transfer started", record, file)

    async def stor(self, connection: Any, rest: str) -> bool:
        return await self._store(connection, rest, append=False)

    async def appe(self, connection: Any, rest: str) -> bool:
        return await self._store(connection, rest, append=True)

    async def stou(self, connection: Session, rest: str) -> bool:
        """STOU: store under a name no file has yet; RFC 1123 4.1.2.9 reply
        ``150 FILE: name`` tells the client which."""
        if not name_allowed(rest):
            connection.response("553", NAME_REFUSED)
            return True
        base = rest.strip(" ") or "stou"
        if base.endswith("/"):
            base += "stou"
        path_io = connection.path_io
        candidate = base
        for _ in range(STOU_ATTEMPTS):
            real, _virtual = await self.resolve(connection, candidate)
            key = writer_key(path_io, real)
            # a name is taken when it exists or another STOU/STOR is writing it:
            # two simultaneous STOU never get the same name
            if not await path_io.exists(real) and self.active_writers.claim(key):
                break
            candidate = f"{base}.{secrets.token_hex(4)}"
        else:
            connection.response("450", "could not find a unique name")
            return True
        connection.restart_offset = 0  # REST makes no sense for a new file
        # across nodes sharing the storage, the name is taken by the commit itself:
        # one that another node took meanwhile fails this upload (550), never theirs
        return await self._store(
            connection, candidate, append=False, info=f"FILE: {candidate}", claimed=key,
            exclusive=bool(getattr(path_io, "exclusive_create", False)),
        )

    async def _store(
        self, connection: Session, rest: str, *, append: bool,
        info: str = "data transfer started", claimed: Hashable | None = None,
        exclusive: bool = False,
    ) -> bool:
        """STOR/APPE/STOU: one writer per file at a time (a second gets 450), so an
        aborted upload never rolls back over another client's acknowledged bytes."""
        if not name_allowed(rest):
            connection.response("553", NAME_REFUSED)
            return True
        real, virtual = await self.resolve(connection, rest)
        if claimed is None:
            claimed = writer_key(connection.path_io, real)
            if not self.active_writers.claim(claimed):
                connection.response("450", "file busy: another upload to it is in progress")
                return True
        try:
            return await self._store_claimed(
                connection, real, virtual, append=append, info=info, key=claimed,
                exclusive=exclusive,
            )
        except BaseException:
            self.active_writers.release(claimed)
            raise

    async def _store_claimed(
        self, connection: Session, real: Any, virtual: PurePosixPath, *,
        append: bool, info: str, key: Hashable, exclusive: bool = False,
    ) -> bool:
        refused = await self.upload_refusal(connection, virtual, real)
        if refused is not None:
            self.active_writers.release(key)
            connection.restart_offset = 0
            connection.login.allocated = None
            connection.response(*refused)
            return True
        offset, connection.restart_offset = connection.restart_offset, 0
        # REST then STOR or APPE writes from the offset on, in place (as aioftp
        # does); past the end the gap reads as zeros, as on a disk.  A storage that
        # cannot write in place (an object store) refuses with its own reason (554).
        if offset:
            mode = "r+b"
        elif append:
            mode = "ab"
        else:
            mode = "xb" if exclusive else "wb"
        file = await self._open_for_writing(connection, real, mode)
        ascii_mode = connection.transfer_type == "A"
        record = self.transfer_record(connection, "APPE" if append else "STOR", virtual)
        record.real = str(real)
        block_size = self.block_size
        # only an upload that writes the whole file knows the whole file's checksums
        algorithms = self.upload_checksums if mode in ("wb", "xb") else ()

        async def body(stream: ThrottleStreamIO) -> None:
            if not algorithms:
                return await move(stream, None)
            hasher = UploadHasher(algorithms)
            try:
                await move(stream, hasher)
                record.checksums = await hasher.result()
            finally:
                hasher.close()
            keep = getattr(file, "keep_checksums", None)  # an aioftp-style open's file lacks it
            if keep is not None:
                await keep(record.checksums)  # stored with the file at commit

        async def move(stream: ThrottleStreamIO, hasher: UploadHasher | None) -> None:
            if mode == "r+b":
                await file.seek(offset)
            convert = FromNetwork() if ascii_mode else None
            write = file.write if hasher is None else _hashed(file.write, hasher)
            plain = not stream.throttles and convert is None
            pump = getattr(stream.reader, "pump", None)
            write_now = file.immediate_writer()
            if pump is not None and write_now is not None and plain:
                # plain TCP into storage that never waits: each received block is
                # written before the next is received, from one shared buffer
                sink = write_now if hasher is None else _hashed_now(write_now, hasher)
                record.size += await pump(sink, stream.read_timeout)
                return
            read_view = getattr(stream.reader, "read_view", None)
            if read_view is not None and plain:
                # plain TCP, unthrottled: storage writes straight from the receive buffer
                timeout = stream.read_timeout
                while True:
                    if timeout is None:
                        view = await read_view()
                    else:
                        async with asyncio.timeout(timeout):
                            view = await read_view()
                    if view is None:
                        break
                    record.size += len(view)
                    await write(view)
                return
            read = stream.read
            block = _block_size(block_size, stream)
            while True:
                data = await read(block)
                if not data:
                    break
                record.size += len(data)
                await write(convert.feed(data) if convert else data)
            if convert:
                tail = convert.flush()
                if tail:
                    await write(tail)

        return self.start_transfer(
            connection, body, "150", info, record, file,
            done=lambda: self.active_writers.release(key),
        )

    async def _open_for_writing(self, connection: Session, real: Any, mode: str) -> AsyncPathIOContext:
        """Open for an upload; with the ``stor_creates_parents`` quirk a missing parent
        directory is made first (devices that upload to dated folders never MKD)."""
        path_io = connection.path_io
        opened: AsyncPathIOContext
        try:
            opened = await path_io.open(real, mode)
            return opened
        except Exception as exc:
            if not self.device_quirks.stor_creates_parents or not _not_found(exc):
                raise
        await path_io.mkdir(real.parent, parents=True)
        opened = await path_io.open(real, mode)
        return opened

    async def abor(self, connection: Any, rest: str) -> bool:
        workers = list(connection.extra_workers)
        if not workers:
            connection.response("226", "nothing to abort")
            return True
        for task in workers:
            task.cancel()
        await asyncio.wait(workers)
        return True

    # -- the transfer machinery --------------------------------------------------------------
    def transfer_record(self, connection: Any, command: str, virtual: Any) -> TransferRecord:
        """What the transfer log and metrics learn about this transfer when it ends."""
        user = connection.user
        return TransferRecord(
            command=command,
            direction="o" if command == "RETR" else "i",
            path=str(virtual),
            login=getattr(user, "login", None),
            client_host=connection.client_host,
            binary=connection.transfer_type != "A",
            backend=getattr(connection.path_io, "backend_name", type(connection.path_io).__name__),
        )

    def start_transfer(
        self,
        connection: Session,
        body: Body,
        code: str,
        info: str,
        record: TransferRecord | None = None,
        file: AsyncPathIOContext | None = None,
        done: Callable[[], None] | None = None,
    ) -> bool:
        """Start ``body(stream)`` as the session's transfer and reply ``code`` (1xx).

        ``file``, opened by the handler, is committed when the transfer succeeds and
        rolled back otherwise (no data connection, ABOR, a failure); ``done`` runs
        when it has ended, whichever way.
        """
        if connection.extra_workers:
            if file is not None:
                connection.loop.create_task(file.abort())
            if done is not None:
                done()
            connection.response("425", "a transfer is already in progress")
            return True
        task = connection.loop.create_task(self._run_transfer(connection, body, record, file))
        if done is not None:
            task.add_done_callback(lambda _task: done())
        connection.extra_workers.add(task)
        connection.response(code, info)
        return True

    async def _run_transfer(
        self,
        connection: Session,
        body: Body,
        record: TransferRecord | None,
        file: AsyncPathIOContext | None,
    ) -> None:
        if record is not None:
            record.started = time.time()
        status = "failed"
        try:
            if file is None:
                status = await self._run_transfer_body(connection, body)
            else:
                async with file:  # commits on success, rolls back on any failure
                    status = await self._run_transfer_body(connection, body)
                    if status != "complete":
                        raise _NotCommitted
        except _NotCommitted:
            pass
        except asyncio.CancelledError:
            status = "aborted"
            raise
        except (ConnectionError, TimeoutError):
            status = "aborted"
            raise
        else:
            if status == "complete":
                if record is not None:
                    # recorded (an event outbox, usage) before the client hears of it
                    record.finish(status)
                    await self.emit(connection, self._transfer_operation(connection, record))
                connection.response("226", "transfer complete")
        finally:
            await connection.data.transfer_done()
            if record is not None:
                if status != "complete":
                    record.checksums = {}  # of no file: nothing was stored
                if record.finished is None or status != "complete":
                    record.finish(status)
                self.notify("transfer", connection, record)

    def _transfer_operation(self, connection: Session, record: TransferRecord) -> Any:
        kind = "download" if record.direction == "o" else "upload"
        return self.operation(connection, kind, path=record.path, real=record.real or None,
                              size=record.size, record=record)

    async def _run_transfer_body(self, connection: Session, body: Body) -> str:
        """Move the bytes; "complete", "failed" (no data connection) or "aborted"."""
        try:
            try:
                stream = await connection.data.connect()
            except DataChannelRefused as refused:
                connection.response(refused.code, refused.text)
                return "failed"
            try:
                await body(stream)
            except BaseException:
                # aborted or failed: drop what is still buffered for the peer, or
                # closing would wait (up to DATA_CLOSE_TIMEOUT) for a reader that
                # stopped reading, and ABOR's 426/226 would wait with it
                stream.writer.transport.abort()
                raise
            finally:
                await _close_data(stream)
            return "complete"
        except asyncio.CancelledError:
            if connection.closing:
                raise
            connection.response("426", "transfer aborted")
            connection.response("226", "abort successful")
            return "aborted"


class _NotCommitted(Exception):
    """The transfer did not complete: leave the file's context by rolling back."""


def _hashed(write: Callable[[Any], Awaitable[None]], hasher: UploadHasher
            ) -> Callable[[Any], Awaitable[None]]:
    """``write``, then the same bytes to the hasher (a view stays valid until the
    next read, so both see the same bytes)."""

    async def write_and_hash(data: Any) -> None:
        await write(data)
        await hasher.afeed(data)

    return write_and_hash


def _hashed_now(write_now: Callable[[Any], None], hasher: UploadHasher) -> Callable[[Any], None]:
    """The synchronous ``write_now`` of the pump, hashing what it wrote."""
    feed = hasher.feed

    def write_and_hash(data: Any) -> None:
        write_now(data)
        feed(data)

    return write_and_hash


def _not_found(exc: BaseException) -> bool:
    cause = getattr(exc, "cause", None) or exc.__cause__ or exc
    return isinstance(cause, FileNotFoundError)


def writer_key(path_io: Any, real: Any) -> Hashable:
    """Which file an upload writes, across sessions: the storage (its kind and shared
    state) and the path in it.  A storage composed of others (virtual folders) names
    the store underneath, so accounts sharing a folder share its files' keys."""
    storage_key = getattr(path_io, "storage_key", None)
    if storage_key is not None:
        return storage_key(real)  # type: ignore[no-any-return]
    return (type(path_io).__qualname__, id(path_io.state), str(real))


def _block_size(block_size: int, stream: ThrottleStreamIO) -> int:
    # A throttle only delays the block *after* the one that went over the limit, so
    # throttled transfers move small blocks (the server's block_size, aioftp's 8 KiB)
    # or a file smaller than one large block would pass unthrottled.
    if stream.throttles:
        return min(DATA_BLOCK_SIZE, block_size)
    return DATA_BLOCK_SIZE


async def _close_data(stream: Any) -> None:
    stream.close()
    try:
        async with asyncio.timeout(DATA_CLOSE_TIMEOUT):
            await stream.writer.wait_closed()
    except (OSError, TimeoutError, ConnectionError):
        pass
