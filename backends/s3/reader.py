"""Reading an object: one streaming GetObject, a Range for wherever a seek lands.

The object's ETag is pinned at open and every GetObject carries ``If-Match``, so a
transfer never stitches bytes of two versions together.  A stream that breaks in the
middle (the endpoint dropped an idle connection while a slow client drained the
previous block) is reopened at the current position a few times before giving up.
"""

from __future__ import annotations

import errno
import io
from typing import Any

import aiohttp
from botocore.exceptions import (
    ConnectionClosedError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)

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
#: Reopenings allowed for one read call.
_REOPEN_ATTEMPTS = 3


class S3Reader:
    """An open object: ``read(n)`` returns exactly ``n`` bytes until the end."""

    def __init__(self, client: Any, bucket: str, key: str, *, size: int, etag: str | None,
                 where: str) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.size = size
        self.etag = etag
        self.where = where
        self.position = 0
        self._body: Any = None

    async def _open_body(self) -> None:
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key}
        if self.position:
            request["Range"] = f"bytes={self.position}-"
        if self.etag:
            request["IfMatch"] = self.etag
        with translated(self.where):
            response = await self.client.get_object(**request)
        self._body = response["Body"]

    def _drop_body(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            body.close()

    async def read(self, count: int | None = -1) -> bytes:
        remaining = self.size - self.position
        if count is None or count < 0 or count > remaining:
            count = remaining
        if count <= 0:
            return b""
        chunks: list[bytes] = []
        wanted = count
        failures = 0
        while wanted:
            if self._body is None:
                await self._open_body()  # botocore has retried this one already
            try:
                with translated(self.where):
                    chunk = await self._body.read(wanted)
            except _STREAM_ERRORS:
                self._drop_body()
                failures += 1
                if failures > _REOPEN_ATTEMPTS:
                    raise
                continue
            if not chunk:
                # the stream ended before the size HeadObject gave: reopen where we are
                self._drop_body()
                failures += 1
                if failures > _REOPEN_ATTEMPTS:
                    raise ConnectionError(
                        errno.EIO, "S3 object stream ended early", self.where
                    )
                continue
            chunks.append(chunk)
            self.position += len(chunk)
            wanted -= len(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self.position + offset
        elif whence == io.SEEK_END:
            position = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence!r}")
        if position < 0:
            raise OSError(errno.EINVAL, "negative seek position", self.where)
        if position != self.position:
            self._drop_body()  # the next read starts a GetObject with a Range
            self.position = position
        return position

    def close(self) -> None:
        self._drop_body()
