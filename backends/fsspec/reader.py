"""Streaming reads: fixed-size chunks, the next one fetched while the current one is sent.

Memory per open file is bounded by ``chunk_size x (readahead + 1)`` whatever the
file's size.  The fetch is the only filesystem-specific part: a ranged
``_cat_file`` on an async filesystem (one request per chunk, ``readahead`` in
flight), a seek + read on an open file object in a thread otherwise.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from ..paths import seek_target

__all__ = ("ChunkReader", "FileObjectFetcher")

Fetch = Callable[[int, int], Awaitable[bytes]]


class FileObjectFetcher:
    """Ranged reads from a blocking file object, each run in the store's threads.

    A lock serialises them: a fetch abandoned by a cancelled reader may still be
    running when the next one, or the close, starts.
    """

    def __init__(self, file: Any, run: Callable[..., asyncio.Future[Any]]) -> None:
        self.file = file
        self._run = run
        self._lock = threading.Lock()

    def _read(self, start: int, length: int) -> bytes:
        with self._lock:
            self.file.seek(start)
            return self.file.read(length)

    def _close(self) -> None:
        with self._lock:
            self.file.close()

    async def __call__(self, start: int, length: int) -> bytes:
        return await self._run(self._read, start, length)

    async def close(self) -> None:
        await self._run(self._close)

    @property
    def raw_file(self) -> Any:
        """The OS file under fsspec's local file object, for zero-copy sendfile."""
        inner = getattr(self.file, "f", self.file)
        try:
            inner.fileno()
        except (AttributeError, OSError, io.UnsupportedOperation, ValueError):
            return None
        return inner


class ChunkReader:
    """A read handle of known size: ``read(n)`` returns exactly ``min(n, remaining)`` bytes."""

    def __init__(self, fetch: Fetch, size: int, *, chunk_size: int, readahead: int,
                 on_close: Callable[[], Awaitable[None]] | None = None,
                 raw_file: Any = None) -> None:
        self._fetch = fetch
        self.size = size
        self._chunk = chunk_size
        self._depth = readahead + 1
        self._on_close = on_close
        self.raw_file = raw_file
        self.position = 0
        self._next = 0  # offset of the first byte not yet requested
        self._pending: deque[tuple[int, asyncio.Task[bytes]]] = deque()
        self._buffer = memoryview(b"")
        self.closed = False

    def _fill(self) -> None:
        while len(self._pending) < self._depth and self._next < self.size:
            length = min(self._chunk, self.size - self._next)
            self._pending.append((length, asyncio.ensure_future(self._fetch(self._next, length))))
            self._next += length

    async def read(self, count: int = -1) -> bytes:
        if self.closed:
            raise ValueError("read from a closed file")
        if count is None or count < 0:
            count = max(self.size - self.position, 0)
        parts: list[bytes | memoryview] = []
        wanted = count
        while wanted > 0:
            if not self._buffer:
                self._fill()
                if not self._pending:
                    break
                length, task = self._pending[0]
                data = await task
                self._pending.popleft()
                if len(data) < length:  # the file shrank under us: it ends here
                    self._cancel_pending()
                    self.size = self._next = self.position + len(data)
                if not data:
                    break
                self._buffer = memoryview(data)
                self._fill()
            piece = self._buffer[:wanted]
            self._buffer = self._buffer[len(piece):]
            parts.append(piece)
            wanted -= len(piece)
            self.position += len(piece)
        if len(parts) == 1 and isinstance(parts[0], memoryview):
            whole = parts[0].obj
            if isinstance(whole, bytes) and len(parts[0]) == len(whole):
                return whole  # a whole chunk: no copy
        return b"".join(parts)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = seek_target(offset, whence, self.position, self.size)
        if target < 0:
            raise ValueError("negative seek position")
        if target != self.position:
            self._cancel_pending()
            self._buffer = memoryview(b"")
            self.position = self._next = target
        return target

    def _cancel_pending(self) -> None:
        for _, task in self._pending:
            task.cancel()
        self._pending.clear()

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        pending = [task for _, task in self._pending]
        self._cancel_pending()
        self._buffer = memoryview(b"")
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        if self._on_close is not None:
            await self._on_close()
