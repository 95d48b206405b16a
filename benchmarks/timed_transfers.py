"""Many simultaneous RETR/STOR on raw asyncio streams, each timed: first byte and total.

Built on ``loadgen.py``: the same control connection and setup (log in, ``TYPE I``,
``PASV``, open the data connection), done ``setup_concurrency`` clients at a time and
not timed.  Then every transfer starts at once.  Per transfer:

* RETR: time to first byte = from sending ``RETR`` to the first data byte; total =
  until the ``226``; the byte count is checked.
* STOR: time to first byte = from sending ``STOR`` to the ``150`` (when the server is
  ready for the first byte); total = until the ``226`` after the data is sent.

The batch's wall time runs from the first command to the last ``226``; throughput
counts only transfers that completed correctly.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

import loadgen

CHUNK = 256 * 1024


@dataclass
class Batch:
    clients: int
    ttfb: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    bytes: int = 0
    wall: float = 0.0
    setup_wall: float = 0.0

    @property
    def failed(self) -> int:
        return self.clients - len(self.total)

    def reasons(self, limit: int = 3) -> str:
        return "; ".join(f"{n}x {reason}" for reason, n in self.failures.most_common(limit))


async def _retr(prepared: loadgen._Prepared, name: str, expected: int) -> tuple[float, float, int]:
    control = prepared.control
    started = time.perf_counter()
    control.writer.write(f"RETR {name}\r\n".encode())
    await control.expect("RETR", "150", "125")
    reader = prepared.data_reader
    first = None
    received = 0
    try:
        while chunk := await reader.read(CHUNK):
            if first is None:
                first = time.perf_counter() - started
            received += len(chunk)
    except OSError as exc:
        raise loadgen.ClientFailure("RETR-data", f"{type(exc).__name__}: {exc}"[:80]) from exc
    prepared.data_writer.close()
    await control.expect("RETR-end", "226", "250")
    if received != expected:
        raise loadgen.ClientFailure("RETR-size", f"got {received} bytes, expected {expected}")
    return first if first is not None else time.perf_counter() - started, \
        time.perf_counter() - started, received


async def _stor(prepared: loadgen._Prepared, name: str, payload: bytes) -> tuple[float, float, int]:
    control = prepared.control
    started = time.perf_counter()
    control.writer.write(f"STOR {name}\r\n".encode())
    await control.expect("STOR", "150", "125")
    first = time.perf_counter() - started
    writer = prepared.data_writer
    view = memoryview(payload)
    try:
        for offset in range(0, len(view), CHUNK):
            writer.write(view[offset:offset + CHUNK])
            await writer.drain()
        writer.close()
        await writer.wait_closed()
    except OSError as exc:
        raise loadgen.ClientFailure("STOR-data", f"{type(exc).__name__}: {exc}"[:80]) from exc
    await control.expect("STOR-end", "226", "250")
    return first, time.perf_counter() - started, len(payload)


async def batch(host: str, port: int, names: list[str], direction: str, user: str, password: str,
                *, payload: bytes = b"", expected: int = 0, setup_concurrency: int = 100,
                setup_timeout: float = 60.0, timeout: float = 300.0) -> Batch:
    """One client per name; all transfers at once after the (untimed) setup."""
    result = Batch(len(names))
    gate = asyncio.Semaphore(setup_concurrency)

    async def prepare() -> loadgen._Prepared:
        async with gate:
            async with asyncio.timeout(setup_timeout):
                return await loadgen._prepare(host, port, user, password)

    started = time.perf_counter()
    prepared = await asyncio.gather(*(prepare() for _ in names), return_exceptions=True)
    result.setup_wall = time.perf_counter() - started
    ready = []
    for outcome, name in zip(prepared, names, strict=True):
        if isinstance(outcome, BaseException):
            result.failures[f"setup: {_reason(outcome)}"] += 1
        else:
            ready.append((outcome, name))

    async def one(p: loadgen._Prepared, name: str) -> tuple[float, float, int]:
        async with asyncio.timeout(timeout):
            if direction == "retr":
                return await _retr(p, name, expected)
            return await _stor(p, name, payload)

    try:
        started = time.perf_counter()
        timings = await asyncio.gather(*(one(p, n) for p, n in ready), return_exceptions=True)
        result.wall = time.perf_counter() - started
        for timing in timings:
            if isinstance(timing, BaseException):
                result.failures[_reason(timing)] += 1
            else:
                first, total, size = timing
                result.ttfb.append(first)
                result.total.append(total)
                result.bytes += size
    finally:
        async def leave(p: loadgen._Prepared) -> None:
            try:
                async with asyncio.timeout(10):
                    await p.control.quit()
            except (loadgen.ClientFailure, TimeoutError, OSError):
                pass

        await asyncio.gather(*(leave(p) for p, _ in ready))
        for p, _ in ready:
            p.close()
    return result


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, loadgen.ClientFailure):
        return str(exc)[:90]
    return f"{type(exc).__name__}: {exc}"[:90]
