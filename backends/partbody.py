"""A part's bytes handed to an S3 client without copying them.

Shared by the S3 backend's multipart writer and the fsspec backend's s3fs uploads, so
it lives beside ``paths`` and imports nothing from either (nor aiobotocore): an
fsspec-only installation must import it.

botocore copies a ``bytearray`` body more than once on its way to the socket (the
payload hash, the HTTP layer), which for 8 MiB parts x 4 in flight is tens of MiB per
upload.  A seekable file over a view of the buffer is read in small chunks instead,
and can be rewound for a retry.
"""

from __future__ import annotations

import asyncio
import errno
import io
import mmap
import time
from typing import Any

from .paths import seek_target

Buffer = bytes | bytearray | memoryview

__all__ = ("PartBody", "PartBuffer", "send_while_moving")


class PartBody(io.RawIOBase):
    """A read-only, seekable file over ``buffer``; the buffer must not change meanwhile."""

    def __init__(self, buffer: Buffer) -> None:
        super().__init__()
        self._view = memoryview(buffer).cast("B")
        self._position = 0
        #: when the HTTP layer last took bytes: a request whose body stops moving
        #: has an endpoint that stopped reading (see :func:`send_while_moving`)
        self.last_progress = time.monotonic()

    @property
    def sent(self) -> bool:
        """Whether every byte has been taken (what follows is waiting for the answer)."""
        return self._position >= len(self._view)

    def __len__(self) -> int:
        return len(self._view)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        position = seek_target(offset, whence, self._position, len(self._view))
        if position < 0:
            raise ValueError(f"negative seek position {position}")
        self._position = position
        return position

    def read(self, size: int | None = -1) -> bytes:
        start = min(self._position, len(self._view))
        end = len(self._view) if size is None or size < 0 else min(len(self._view), start + size)
        self._position = max(self._position, end)
        self.last_progress = time.monotonic()
        return bytes(self._view[start:end])

    def readinto(self, target: Any) -> int:  # any writable buffer (io.RawIOBase)
        out = memoryview(target).cast("B")
        start = min(self._position, len(self._view))
        count = min(len(out), len(self._view) - start)
        out[:count] = self._view[start : start + count]
        self._position = start + count
        self.last_progress = time.monotonic()
        return count

    def close(self) -> None:
        if not self.closed:
            self._view.release()
        super().close()


class PartBuffer:
    """One part being filled, in an anonymous memory map sized for the whole part.

    Pages are only made resident as bytes arrive, and unmapping gives them straight
    back to the system: a growing ``bytearray`` instead leaves the allocator with
    freed blocks it keeps, which with fifty small uploads at once doubled the RSS.
    """

    def __init__(self, capacity: int) -> None:
        self._map = mmap.mmap(-1, max(capacity, 1))
        self.capacity = capacity
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def append(self, data: Buffer) -> None:
        count = len(data) if not isinstance(data, memoryview) else data.nbytes
        if self.size + count > self.capacity:
            raise ValueError(f"part buffer overflow: {self.size} + {count} > {self.capacity}")
        self._map[self.size : self.size + count] = data
        self.size += count

    def view(self) -> memoryview:
        """The bytes so far; release the view before the buffer is dropped."""
        return memoryview(self._map)[: self.size]

    def body(self) -> PartBody:
        return PartBody(self.view())


async def send_while_moving(body: PartBody, request: Any, stall_timeout: float, where: str) -> Any:
    """Await ``request`` (which sends ``body``) while the body moves; give up when it stops.

    botocore's read timeout covers waiting for an answer, but nothing covers an
    endpoint that stops reading the body mid-request: the HTTP layer would wait for
    socket buffer space forever, and the FTP session with it.  The body's progress is
    watched instead; ``stall_timeout`` seconds without a byte taken fail the request
    with ``TimeoutError`` (451 to the client, the upload aborted).
    """
    task = asyncio.ensure_future(request)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=stall_timeout / 4)
            if done:
                return task.result()
            idle = time.monotonic() - body.last_progress
            if not body.sent and idle >= stall_timeout:
                task.cancel()
                raise TimeoutError(
                    errno.ETIMEDOUT, f"S3 stopped reading the upload for {idle:.0f} s", where
                )
    finally:
        if not task.done():
            task.cancel()
