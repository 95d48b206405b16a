"""A TCP proxy in front of a service (the S3 endpoint, PostgreSQL) that can cut it
off or stall it, for fault tests.

``cut()`` resets every open connection and every new one until ``restore()``: to
botocore the endpoint is gone, as when S3 is unreachable mid-transfer.  ``stall()``
keeps every connection open but moves no byte either way until ``restore()``: an
endpoint that hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from urllib.parse import urlsplit

__all__ = ("FaultProxy",)


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    def __init__(self, target: str | tuple[str, int]) -> None:
        """``target``: an ``http://host:port`` URL or a (host, port) pair."""
        if isinstance(target, str):
            parts = urlsplit(target)
            target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.target = target
        self.down = False
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.port = 0
        self._server: asyncio.base_events.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def cut(self) -> None:
        self.down = True
        for pair in list(self._pairs):
            for writer in pair:
                _reset(writer)
        self._pairs.clear()

    def stall(self) -> None:
        self.flowing.clear()

    def restore(self) -> None:
        self.down = False
        self.flowing.set()

    async def close(self) -> None:
        self.flowing.set()
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks))

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            _reset(writer)
            return
        await self.flowing.wait()
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(writer)
            return
        pair = (writer, up_writer)
        self._pairs.add(pair)
        tasks = [
            asyncio.ensure_future(self._pipe(reader, up_writer)),
            asyncio.ensure_future(self._pipe(up_reader, writer)),
        ]
        self._tasks.update(tasks)
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
                self._tasks.discard(task)
            self._pairs.discard(pair)
            for side in pair:
                side.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(256 * 1024):
                await self.flowing.wait()
                writer.write(data)
                await writer.drain()
