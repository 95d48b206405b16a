"""Reading an object: one streaming GetObject, a Range for wherever a seek lands.

:meth:`S3Reader.open` sends that GetObject at once: its answer says whether the object
exists, its size and its ETag, so a download costs one request, and its body is the
stream read from (unless a seek moves away from the start first).

The stream is read ahead by a background task, up to ``READAHEAD_BYTES``, so the
next bytes arrive from S3 while the previous ones are still being sent to the FTP
client: without it a download alternates between waiting on S3 and waiting on
the client, and runs at well below the speed of either.

The object's ETag is pinned at open and every GetObject carries ``If-Match``, so a
transfer never stitches bytes of two versions together.  A stream that breaks in the
middle (the endpoint dropped an idle connection while a slow client drained the
previous block) is reopened at the current position a few times before giving up.
"""

from __future__ import annotations

import asyncio
import errno
import io
from collections import deque
from typing import Any

import aiohttp
from botocore.exceptions import (
    ConnectionClosedError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from ..paths import seek_target
from .errors import translated

__all__ = ("S3Reader",)

#: Mid-stream failures worth reopening the stream for.
_STREAM_ERRORS = (
    aiohttp.ClientPayloadError,
    aiohttp.ClientConnectionError,
    ConnectionClosedError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
    ConnectionError,
)
#: Reopenings allowed in a row (a chunk received resets the count).
_REOPEN_ATTEMPTS = 3
#: Bytes read ahead of the consumer, and the most asked of the stream at once.
READAHEAD_BYTES = 4 * 1024 * 1024
READ_CHUNK = 256 * 1024


class _Ahead:
    """Chunks fetched ahead, bounded in bytes; an exception ends the stream."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.chunks: deque[bytes | BaseException] = deque()
        self.size = 0
        self.changed = asyncio.Event()

    def put_nowait(self, item: bytes | BaseException) -> None:
        self.chunks.append(item)
        if isinstance(item, bytes):
            self.size += len(item)
        self.changed.set()

    async def room(self) -> None:
        while self.size >= self.limit:
            self.changed.clear()
            await self.changed.wait()

    async def get(self) -> bytes:
        while not self.chunks:
            self.changed.clear()
            await self.changed.wait()
        item = self.chunks.popleft()
        self.changed.set()
        if isinstance(item, BaseException):
            self.chunks.appendleft(item)  # every later read fails the same way
            raise item
        self.size -= len(item)
        return item


class S3Reader:
    """An open object: ``read(n)`` returns exactly ``n`` bytes until the end."""

    def __init__(self, client: Any, bucket: str, key: str, *, size: int, etag: str | None,
                 where: str, readahead: int = READAHEAD_BYTES) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.size = size
        self.etag = etag
        self.where = where
        self.readahead = readahead
        self.position = 0
        self._ahead: _Ahead | None = None
        self._fetcher: asyncio.Task[None] | None = None
        self._leftover = b""
        #: the body of the GetObject made by open(), positioned at byte 0
        self._first_body: Any = None

    @classmethod
    async def open(cls, client: Any, bucket: str, key: str, *, where: str,
                   readahead: int = READAHEAD_BYTES) -> S3Reader:
        """GetObject the whole object; FileNotFoundError when there is none."""
        with translated(where):
            response = await client.get_object(Bucket=bucket, Key=key)
        reader = cls(client, bucket, key, size=int(response.get("ContentLength") or 0),
                     etag=response.get("ETag"), where=where, readahead=readahead)
        reader._first_body = response["Body"]
        return reader

    def _drop_first_body(self) -> None:
        body, self._first_body = self._first_body, None
        if body is not None:
            body.close()

    async def _open_body(self, position: int) -> Any:
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key}
        if position:
            request["Range"] = f"bytes={position}-"
        if self.etag:
            request["IfMatch"] = self.etag
        with translated(self.where):
            response = await self.client.get_object(**request)
        return response["Body"]

    async def _fetch(self, ahead: _Ahead, position: int) -> None:
        """Read the object from ``position`` to its end into ``ahead``."""
        body: Any = None
        failures = 0
        try:
            while position < self.size:
                await ahead.room()
                if body is None and position == 0 and self._first_body is not None:
                    body, self._first_body = self._first_body, None
                if body is None:
                    body = await self._open_body(position)  # botocore retried this one
                try:
                    with translated(self.where):
                        chunk = await body.read(min(READ_CHUNK, self.size - position))
                except _STREAM_ERRORS:
                    body.close()
                    body = None
                    failures += 1
                    if failures > _REOPEN_ATTEMPTS:
                        raise
                    continue
                if not chunk:
                    # the stream ended before the size HeadObject gave: reopen where we are
                    body.close()
                    body = None
                    failures += 1
                    if failures > _REOPEN_ATTEMPTS:
                        raise ConnectionError(errno.EIO, "S3 object stream ended early", self.where)
                    continue
                failures = 0
                position += len(chunk)
                ahead.put_nowait(chunk)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            ahead.put_nowait(exc)
        finally:
            if body is not None:
                body.close()

    def _stop_fetching(self) -> None:
        fetcher, self._fetcher = self._fetcher, None
        if fetcher is not None and not fetcher.done():
            fetcher.cancel()
        self._ahead = None
        self._leftover = b""

    async def read(self, count: int | None = -1) -> bytes:
        remaining = self.size - self.position
        if count is None or count < 0 or count > remaining:
            count = remaining
        if count <= 0:
            return b""
        if self._ahead is None:
            self._ahead = _Ahead(self.readahead)
            self._fetcher = asyncio.ensure_future(self._fetch(self._ahead, self.position))
        pieces: list[bytes] = []
        wanted = count
        while wanted:
            if not self._leftover:
                self._leftover = await self._ahead.get()
            piece = self._leftover
            if len(piece) > wanted:
                piece, self._leftover = piece[:wanted], piece[wanted:]
            else:
                self._leftover = b""
            pieces.append(piece)
            wanted -= len(piece)
        self.position += count
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        position = seek_target(offset, whence, self.position, self.size)
        if position < 0:
            raise OSError(errno.EINVAL, "negative seek position", self.where)
        if position != self.position:
            self._stop_fetching()  # the next read starts a GetObject with a Range
            self._drop_first_body()
            self.position = position
        return position

    def close(self) -> None:
        self._stop_fetching()
        self._drop_first_body()
