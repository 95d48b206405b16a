"""Stream wrappers with timeouts and throttles (aioftp's ``StreamIO`` family)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any

from gateway.throttle import StreamThrottle

__all__ = ("StreamIO", "ThrottleStreamIO", "AsyncStreamIterator", "DEFAULT_BLOCK_SIZE")

DEFAULT_BLOCK_SIZE = 8192


class AsyncStreamIterator:
    """Iterate over results of a read coroutine until it returns something empty."""

    def __init__(self, read_coro: Callable[[], Awaitable[bytes]]) -> None:
        self.read_coro = read_coro

    def __aiter__(self) -> AsyncStreamIterator:
        return self

    async def __anext__(self) -> bytes:
        data = await self.read_coro()
        if data:
            return data
        raise StopAsyncIteration


class StreamIO:
    """A reader/writer pair with per-operation timeouts.

    Timeouts use ``asyncio.timeout`` rather than ``wait_for`` so a read costs no
    extra task: this object sits in every transfer's per-block loop.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        timeout: float | None = None,
        read_timeout: float | None = None,
        write_timeout: float | None = None,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.read_timeout = read_timeout or timeout
        self.write_timeout = write_timeout or timeout

    async def readline(self) -> bytes:
        if self.read_timeout is None:
            return await self.reader.readline()
        async with asyncio.timeout(self.read_timeout):
            return await self.reader.readline()

    async def read(self, count: int = -1) -> bytes:
        if self.read_timeout is None:
            return await self.reader.read(count)
        async with asyncio.timeout(self.read_timeout):
            return await self.reader.read(count)

    async def readexactly(self, count: int) -> bytes:
        if self.read_timeout is None:
            return await self.reader.readexactly(count)
        async with asyncio.timeout(self.read_timeout):
            return await self.reader.readexactly(count)

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        if self.write_timeout is None:
            await self.writer.drain()
            return
        async with asyncio.timeout(self.write_timeout):
            await self.writer.drain()

    def close(self) -> None:
        self.writer.close()

    def iter_by_line(self) -> AsyncStreamIterator:
        return AsyncStreamIterator(self.readline)

    def iter_by_block(self, count: int = DEFAULT_BLOCK_SIZE) -> AsyncStreamIterator:
        return AsyncStreamIterator(lambda: self.read(count))


class ThrottleStreamIO(StreamIO):
    """``StreamIO`` that honours a mapping of named ``StreamThrottle`` objects.

    Before each read or write it sleeps once for the longest delay any throttle
    asks for, then accounts the moved bytes in all of them.
    """

    def __init__(
        self,
        *args: Any,
        throttles: Mapping[str, StreamThrottle] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.throttles = dict(throttles or {})

    async def wait(self, name: str) -> None:
        delay = 0.0
        for throttle in self.throttles.values():
            delay = max(delay, getattr(throttle, name).delay())
        if delay > 0:
            await asyncio.sleep(delay)

    def append(self, name: str, data: bytes | int, start: float) -> None:
        for throttle in self.throttles.values():
            getattr(throttle, name).append(data, start)

    async def read(self, count: int = -1) -> bytes:
        if not self.throttles:
            return await super().read(count)
        await self.wait("read")
        start = time.perf_counter()
        data = await super().read(count)
        self.append("read", data, start)
        return data

    async def readline(self) -> bytes:
        if not self.throttles:
            return await super().readline()
        await self.wait("read")
        start = time.perf_counter()
        data = await super().readline()
        self.append("read", data, start)
        return data

    async def write(self, data: bytes) -> None:
        if not self.throttles:
            await super().write(data)
            return
        await self.wait("write")
        start = time.perf_counter()
        await super().write(data)
        self.append("write", data, start)

    async def __aenter__(self) -> ThrottleStreamIO:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
