"""Transactional writes: the target changes only when the upload is committed.

:class:`Writer` holds what every filesystem shares (buffering into chunks, the modes,
copying the old content an append or a resume keeps); a *sink* decides where the
chunks go and how they become the file:

* :class:`FileSink`: the filesystem's own file object, opened on a hidden sibling
  name and written in the store's threads; commit moves the sibling over the target,
  abort deletes it.  The move is a rename on local disk (atomic), a copy and delete
  elsewhere; on every filesystem a failed upload leaves the target as it was.
* ``multipart.MultipartSink``: s3fs, an S3 multipart upload that only becomes an
  object when completed (see that module).

Append and resume are rewrites: the kept part of the old file is copied into the new
one first (and, for a resume, the old tail after what was written is copied at the
end), so they are as atomic as a plain upload, at the price of reading the old file.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ..paths import seek_target

__all__ = ("FileSink", "Sink", "Writer")

ReadRange = Callable[[int, int], Awaitable[bytes]]


class Sink(Protocol):
    """Where a writer's chunks go."""

    chunk_size: int

    async def write(self, chunk: bytearray) -> None:
        """Take ``chunk`` (the writer never touches it again); may return before it is stored."""

    async def commit(self, last: bytearray) -> None:
        """Store ``last`` and make everything the content of the target."""

    async def abort(self) -> None:
        """Forget everything; the target stays as it was."""


class Writer:
    """A write handle: ``wb`` (replace), ``ab`` (append), ``r+b`` (resume at a seek offset)."""

    def __init__(self, sink: Sink, *, mode: str, base_size: int = 0,
                 read_base: ReadRange | None = None,
                 on_finish: Callable[[], Awaitable[None]] | None = None) -> None:
        if mode not in ("w", "a", "r+"):
            raise ValueError(f"unsupported write mode {mode!r}")
        self._sink = sink
        self.mode = mode
        self._base_size = base_size if read_base is not None else 0
        self._read_base = read_base
        self._chunk = sink.chunk_size
        self._buffer = bytearray()
        self.position = self._base_size if mode == "a" else 0
        self._start = 0  # where the first write goes
        self._started = False
        self._on_finish = on_finish
        self.raw_file = None

    async def _begin(self) -> None:
        """Copy what the new file keeps of the old one before the first written byte."""
        if self._started:
            return
        self._started = True
        self._start = self.position
        await self._copy_base(0, self.position)

    async def _copy_base(self, start: int, end: int) -> None:
        if self._read_base is None:
            return
        offset = start
        while offset < end:
            data = await self._read_base(offset, min(self._chunk, end - offset))
            if not data:
                raise OSError(f"the file shrank while it was being rewritten (at {offset})")
            await self._push(data)
            offset += len(data)

    async def _push(self, data: bytes | bytearray | memoryview) -> None:
        self._buffer += data
        while len(self._buffer) >= self._chunk:
            if len(self._buffer) == self._chunk:
                chunk, self._buffer = self._buffer, bytearray()
            else:  # chunks of the set size: S3 parts have bounds, memory has too
                chunk = self._buffer[: self._chunk]
                del self._buffer[: self._chunk]
            await self._sink.write(chunk)

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        await self._begin()
        await self._push(data)
        self.position += len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if self.mode == "a":
            return self.position  # appends land at the end, as O_APPEND does
        offset = seek_target(offset, whence, self.position, self._base_size)
        if offset == self.position:
            return offset
        if self._started or self.mode != "r+" or not 0 <= offset <= self._base_size:
            raise io.UnsupportedOperation("this storage writes forward only; seek before writing")
        self.position = offset
        return offset

    async def commit(self) -> None:
        try:
            try:
                await self._begin()
                if self.mode == "r+" and self.position < self._base_size:
                    await self._copy_base(self.position, self._base_size)  # the old tail stays
            except BaseException:
                await self._sink.abort()
                raise
            last, self._buffer = self._buffer, bytearray()
            await self._sink.commit(last)
        finally:
            await self._finish()

    async def abort(self) -> None:
        self._buffer = bytearray()
        try:
            await self._sink.abort()
        finally:
            await self._finish()

    async def _finish(self) -> None:
        on_finish, self._on_finish = self._on_finish, None
        if on_finish is not None:
            await on_finish()


class FileSink:
    """Chunks written to a hidden sibling through a blocking file object, one thread call each.

    The next chunk is gathered on the loop while the previous one is written, so the
    disk and the network work at the same time; memory stays at two chunks.  A lock
    serialises the thread calls: after a cancellation an abandoned write may still
    run when the abort starts.
    """

    def __init__(self, file: Any, run: Callable[..., asyncio.Future[Any]], chunk_size: int,
                 finish: Callable[[], Awaitable[None]],
                 discard: Callable[[], Awaitable[None]],
                 spawn: Callable[[Any], asyncio.Task[Any]]) -> None:
        self.file = file
        self.chunk_size = chunk_size
        self._run = run
        self._finish = finish
        self._discard = discard
        self._spawn = spawn
        self._lock = threading.Lock()
        self._inflight: asyncio.Future[Any] | None = None
        self._closed = False

    def _write(self, chunk: bytearray) -> None:
        with self._lock:
            self.file.write(chunk)

    def _close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self.file.close()

    async def _settle(self) -> None:
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            await asyncio.shield(inflight)

    async def write(self, chunk: bytearray) -> None:
        await self._settle()
        self._inflight = self._run(self._write, chunk)

    async def commit(self, last: bytearray) -> None:
        try:
            await self._settle()
            if last:
                await self._run(self._write, last)
            await self._run(self._close)
            await self._finish()
        except BaseException:
            await self.abort()
            raise

    async def abort(self) -> None:
        await asyncio.shield(self._spawn(self._cleanup()))

    async def _cleanup(self) -> None:
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            await asyncio.gather(inflight, return_exceptions=True)
        try:
            await self._run(self._close)
        except Exception:
            pass  # the sibling goes anyway
        await self._discard()
