"""A plain-TCP data connection that receives into one reusable buffer.

Uploads are the hot path of an upload endpoint.  asyncio's ``StreamReader`` copies
every received block three times (a new ``bytes`` per ``recv``, its own buffer,
the slice handed out) and its buffers grow and shrink with the load, which with
hundreds of concurrent uploads shows up as RSS and page faults.  Here the kernel
writes straight into a fixed per-connection buffer (``recv_into``) and the
transfer hands a view of it to storage: one copy in, one copy out, and memory
bounded by the buffer size times the number of data connections.

``ProtocolReader`` and ``ProtocolWriter`` give the protocol the ``StreamReader``
and ``StreamWriter`` faces that ``ThrottleStreamIO`` (aioftp's data connection
type) expects, so handlers written for aioftp keep working unchanged.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

__all__ = ("DataProtocol", "ProtocolReader", "ProtocolWriter", "DATA_BUFFER_SIZE", "Sink")

#: Receive buffer per plain data connection (allocated on the first byte received).
DATA_BUFFER_SIZE = 256 * 1024
#: What bytes arriving before the transfer asks for them get: a client may send as
#: soon as it sees 150, before the upload is ready; an upload pumped into storage
#: never needs more, one reading views grows it to ``DATA_BUFFER_SIZE``.
EARLY_BUFFER_SIZE = 16 * 1024

#: Takes received bytes at once, before the next receive (storage written on the loop).
Sink = Callable[[memoryview], None]

_shared = threading.local()


def _shared_view() -> memoryview:
    """One receive buffer per thread (event loop) for every connection pumping into a
    sink: the sink consumes the bytes before the loop receives again, so hundreds of
    concurrent uploads cost one buffer, not one each."""
    view: memoryview | None = getattr(_shared, "view", None)
    if view is None:
        view = _shared.view = memoryview(bytearray(DATA_BUFFER_SIZE))
    return view


class DataProtocol(asyncio.BufferedProtocol):
    """Receives into a fixed buffer; the consumer takes views of what arrived."""

    def __init__(self, on_connect: Any = None, buffer_size: int = DATA_BUFFER_SIZE) -> None:
        self._on_connect = on_connect
        self._size = buffer_size
        self._next_size = min(EARLY_BUFFER_SIZE, buffer_size)  # of the next allocation
        # allocated on the first byte received: downloads and listings never need it
        self._view: memoryview | None = None
        self._sink: Sink | None = None
        self._pumped = 0  # bytes given to the sink
        self._pump_done: asyncio.Future[None] | None = None
        self._start = 0  # first byte not yet handed out
        self._end = 0  # end of received data
        self._held = 0  # end of the region the consumer holds a view of
        self._eof = False
        self._error: BaseException | None = None
        self._read_waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._closed: asyncio.Future[None] | None = None
        self.transport: Any = None

    # -- protocol callbacks ----------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self._closed = asyncio.get_running_loop().create_future()
        if self._on_connect is not None:
            self._on_connect(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._sink is not None:
            return _shared_view()
        if self._view is None:
            self._view = memoryview(bytearray(self._next_size))
        return self._view[self._end :]

    def buffer_updated(self, nbytes: int) -> None:
        sink = self._sink
        if sink is not None:
            try:
                sink(_shared_view()[:nbytes])
            except BaseException as exc:  # storage failed: the pump reports it
                self._stop_pump(exc)
                if not self._reading_paused:
                    self._reading_paused = True
                    self.transport.pause_reading()
                return
            self._pumped += nbytes
            return
        self._end += nbytes
        assert self._view is not None
        if self._end >= len(self._view) and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake_reader()
        self._stop_pump(None)
        return True  # the transfer closes the connection itself

    def connection_lost(self, exc: BaseException | None) -> None:
        self._eof = True
        if exc is not None:
            self._error = exc
        self._wake_reader()
        self._stop_pump(exc)
        if self._drain_waiter is not None and not self._drain_waiter.done():
            if exc is None:
                self._drain_waiter.set_exception(ConnectionResetError("connection lost"))
            else:
                self._drain_waiter.set_exception(exc)
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    # -- consumer side ------------------------------------------------------------------
    def _stop_pump(self, exc: BaseException | None) -> None:
        self._sink = None
        done = self._pump_done
        if done is not None and not done.done():
            if exc is None:
                done.set_result(None)
            else:
                done.set_exception(exc)

    async def pump(self, sink: Sink, stall_timeout: float | None) -> int:
        """Give every byte until EOF to ``sink`` as it is received; the byte count.

        What arrived before the pump started goes first.  ``stall_timeout``: seconds
        without a byte before TimeoutError.  A sink's exception ends the pump.
        """
        total = 0
        while (view := await self._pending_view()) is not None:
            sink(view)
            total += len(view)
        self._view = None  # what arrives from now on goes through the shared buffer
        if self._eof:
            if self._error is not None:
                raise self._error
            return total
        loop = asyncio.get_running_loop()
        done = self._pump_done = loop.create_future()
        self._pumped = 0
        self._sink = sink
        if self._reading_paused and not self.transport.is_closing():
            self._reading_paused = False
            self.transport.resume_reading()
        try:
            seen = -1
            while not done.done():
                if stall_timeout is None:
                    await asyncio.shield(done)
                    break
                try:
                    async with asyncio.timeout(stall_timeout):
                        await asyncio.shield(done)
                except TimeoutError:
                    if self._pumped == seen:
                        raise
                    seen = self._pumped
            done.result()
        finally:
            self._sink = None
            self._pump_done = None
        return total + self._pumped

    async def _pending_view(self) -> memoryview | None:
        """Bytes already received into our own buffer, without waiting; None if none."""
        self._start = self._held
        if self._start == self._end:
            self._start = self._end = self._held = 0
            return None
        self._held = self._end
        assert self._view is not None
        return self._view[self._start : self._end]

    def _wake_reader(self) -> None:
        waiter = self._read_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def read_view(self) -> memoryview | None:
        """The next received bytes as a view, valid until the next call; None at EOF.

        Calling again releases the previous view, so the buffer is reused only
        after the consumer is done with it.
        """
        self._start = self._held
        if self._start == self._end:
            self._start = self._end = self._held = 0
            if self._next_size < self._size:
                # a consumer reading views: a full-size buffer from now on
                self._next_size = self._size
                self._view = None
            if self._reading_paused and self.transport is not None:
                self._reading_paused = False
                if not self.transport.is_closing():
                    self.transport.resume_reading()
        while self._start == self._end:
            if self._error is not None:
                raise self._error
            if self._eof:
                return None
            self._read_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._read_waiter
            finally:
                self._read_waiter = None
        self._held = self._end
        assert self._view is not None
        return self._view[self._start : self._end]

    async def drain(self) -> None:
        if self._error is not None:
            raise self._error
        if self.transport is None or self.transport.is_closing():
            if self._eof:
                raise ConnectionResetError("connection lost")
            return
        if self._writing_paused:
            self._drain_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._drain_waiter
            finally:
                self._drain_waiter = None

    async def wait_closed(self) -> None:
        if self._closed is not None:
            await asyncio.shield(self._closed)


class ProtocolReader:
    """The ``StreamReader`` face of a ``DataProtocol``."""

    def __init__(self, protocol: DataProtocol) -> None:
        self._protocol = protocol
        self._pending = b""

    async def pump(self, sink: Sink, stall_timeout: float | None) -> int:
        """Every byte until EOF to ``sink``, as received (see ``DataProtocol.pump``)."""
        total = 0
        if self._pending:
            pending, self._pending = self._pending, b""
            sink(memoryview(pending))
            total = len(pending)
        return total + await self._protocol.pump(sink, stall_timeout)

    async def read_view(self) -> memoryview | None:
        if self._pending:
            pending, self._pending = self._pending, b""
            return memoryview(pending)
        return await self._protocol.read_view()

    async def read(self, n: int = -1) -> bytes:
        if n == 0:
            return b""
        if n < 0:
            chunks = []
            while (view := await self.read_view()) is not None:
                chunks.append(bytes(view))
            return b"".join(chunks)
        view = await self.read_view()
        if view is None:
            return b""
        data = bytes(view[:n])
        if len(view) > n:
            self._pending = bytes(view[n:])
        return data

    async def readexactly(self, n: int) -> bytes:
        parts: list[bytes] = []
        missing = n
        while missing:
            data = await self.read(missing)
            if not data:
                raise asyncio.IncompleteReadError(b"".join(parts), n)
            parts.append(data)
            missing -= len(data)
        return b"".join(parts)

    async def readline(self) -> bytes:
        parts: list[bytes] = []
        while True:
            data = await self.read(DATA_BUFFER_SIZE)
            if not data:
                return b"".join(parts)
            index = data.find(b"\n")
            if index >= 0:
                parts.append(data[: index + 1])
                rest = data[index + 1 :]
                if rest:
                    self._pending = rest + self._pending
                return b"".join(parts)
            parts.append(data)


class ProtocolWriter:
    """The ``StreamWriter`` face of a ``DataProtocol``."""

    def __init__(self, protocol: DataProtocol) -> None:
        self._protocol = protocol
        self.transport = protocol.transport

    def write(self, data: bytes) -> None:
        self.transport.write(data)

    async def drain(self) -> None:
        await self._protocol.drain()

    def close(self) -> None:
        self.transport.close()

    def is_closing(self) -> bool:
        return bool(self.transport.is_closing())

    async def wait_closed(self) -> None:
        await self._protocol.wait_closed()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.transport.get_extra_info(name, default)
