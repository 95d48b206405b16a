"""Raw-protocol FTP load: many asyncio clients speaking the bare minimum of RFC 959.

The same code drives every server, so the client side costs the same for all of
them.  A client that fails records *why* (the stage and the exception or reply), and
the callers aggregate those reasons so a failing server can be diagnosed.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from dataclasses import dataclass, field

_PASV = re.compile(rb"(\d+),\s*(\d+),\s*(\d+),\s*(\d+),\s*(\d+),\s*(\d+)")
DATA_LIMIT = 1 << 20
READ_CHUNK = 1 << 18


class ClientFailure(Exception):
    """One client gave up; ``stage`` says where (``greeting``, ``PASS``, ``RETR``...)."""

    def __init__(self, stage: str, detail: str) -> None:
        super().__init__(f"{stage}: {detail}")
        self.stage = stage
        self.detail = detail


@dataclass
class LoadResult:
    """Outcome of one concurrent run: ``wall`` covers only the measured phase."""

    clients: int
    ok: int = 0
    failures: Counter = field(default_factory=Counter)
    wall: float = 0.0
    setup_wall: float = 0.0
    bytes: int = 0

    @property
    def failed(self) -> int:
        return self.clients - self.ok

    @property
    def no_greeting(self) -> int:
        return sum(n for reason, n in self.failures.items() if reason.startswith("greeting"))

    def reasons(self, limit: int = 3) -> str:
        return "; ".join(f"{n}x {reason}" for reason, n in self.failures.most_common(limit))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ClientFailure):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return "timeout"
    text = str(exc)
    return f"{type(exc).__name__}: {text[:80]}" if text else type(exc).__name__


class Control:
    """One control connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, host: str, port: int) -> Control:
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError as exc:
            raise ClientFailure("connect", _describe(exc)) from exc
        control = cls(reader, writer)
        try:
            await control.expect("greeting", "220")
        except BaseException:
            control.abort()
            raise
        return control

    async def reply(self, stage: str) -> tuple[str, bytes]:
        try:
            line = await self.reader.readline()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            raise ClientFailure(stage, _describe(exc)) from exc
        if len(line) < 4:
            raise ClientFailure(
                stage, "connection closed" if not line else f"bad reply {line[:40]!r}"
            )
        code = line[:3]
        if line[3:4] == b"-":  # multi-line reply: up to "CODE " at the start of a line
            while True:
                more = await self.reader.readline()
                if not more:
                    raise ClientFailure(stage, "connection closed in multi-line reply")
                if more[:3] == code and more[3:4] == b" ":
                    break
        return code.decode("ascii", "replace"), line

    async def expect(self, stage: str, *codes: str) -> tuple[str, bytes]:
        code, line = await self.reply(stage)
        if code not in codes:
            text = line.decode("utf-8", "replace").strip()[:60]
            raise ClientFailure(stage, f"reply {text!r}")
        return code, line

    async def command(self, line: str, *codes: str) -> tuple[str, bytes]:
        stage = line.split(" ", 1)[0]
        try:
            self.writer.write(line.encode() + b"\r\n")
        except (OSError, RuntimeError) as exc:
            raise ClientFailure(stage, _describe(exc)) from exc
        return await self.expect(stage, *codes)

    async def login(self, user: str, password: str) -> None:
        code, _ = await self.command(f"USER {user}", "331", "230")
        if code == "331":
            await self.command(f"PASS {password}", "230")

    async def passive(
        self, data_limit: int = DATA_LIMIT
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        _, line = await self.command("PASV", "227")
        match = _PASV.search(line[4:])
        if match is None:
            raise ClientFailure("PASV", f"cannot parse {line[:60]!r}")
        numbers = [int(n) for n in match.groups()]
        host = ".".join(str(n) for n in numbers[:4])
        port = numbers[4] * 256 + numbers[5]
        try:
            return await asyncio.open_connection(host, port, limit=data_limit)
        except OSError as exc:
            raise ClientFailure("data-connect", _describe(exc)) from exc

    async def quit(self) -> None:
        try:
            await self.command("QUIT", "221")
        finally:
            self.close()

    def close(self) -> None:
        try:
            self.writer.close()
        except (OSError, RuntimeError):
            pass

    def abort(self) -> None:
        transport = self.writer.transport
        if transport is not None:
            transport.abort()


async def _bounded(coro, timeout: float):
    async with asyncio.timeout(timeout):
        return await coro


async def _gather_outcomes(coros, timeout: float) -> list:
    """Run concurrently; each slot is the value or the exception (with its own timeout)."""
    return await asyncio.gather(*(_bounded(c, timeout) for c in coros), return_exceptions=True)


def _record(result: LoadResult, outcome, stage_if_timeout: str) -> bool:
    if isinstance(outcome, BaseException):
        if isinstance(outcome, TimeoutError):
            result.failures[f"{stage_if_timeout}: timeout"] += 1
        else:
            result.failures[_describe(outcome)] += 1
        return False
    return True


# -- concurrent logins ------------------------------------------------------------------
async def logins(
    host: str, port: int, clients: int, user: str, password: str, timeout: float = 30.0
) -> LoadResult:
    """``clients`` connections at once: greeting, USER/PASS, QUIT.  Wall = all of it."""

    async def one() -> None:
        control = await Control.connect(host, port)
        try:
            await control.login(user, password)
            await control.quit()
        finally:
            control.close()

    result = LoadResult(clients)
    started = time.perf_counter()
    outcomes = await _gather_outcomes([one() for _ in range(clients)], timeout)
    result.wall = time.perf_counter() - started
    result.ok = sum(_record(result, o, "login") for o in outcomes)
    return result


# -- concurrent transfers -----------------------------------------------------------------
@dataclass
class _Prepared:
    control: Control
    data_reader: asyncio.StreamReader
    data_writer: asyncio.StreamWriter

    def close(self) -> None:
        for writer in (self.data_writer, self.control.writer):
            try:
                writer.transport.abort()
            except (OSError, RuntimeError, AttributeError):
                pass


async def _prepare(host: str, port: int, user: str, password: str) -> _Prepared:
    control = await Control.connect(host, port)
    try:
        await control.login(user, password)
        await control.command("TYPE I", "200")
        data_reader, data_writer = await control.passive()
    except BaseException:
        control.abort()
        raise
    return _Prepared(control, data_reader, data_writer)


async def _retr(prepared: _Prepared, name: str, expected: int) -> int:
    control = prepared.control
    await control.command(f"RETR {name}", "150", "125")
    received = 0
    reader = prepared.data_reader
    try:
        while chunk := await reader.read(READ_CHUNK):
            received += len(chunk)
    except OSError as exc:
        raise ClientFailure("RETR-data", _describe(exc)) from exc
    prepared.data_writer.close()
    await control.expect("RETR-end", "226", "250")
    if received != expected:
        raise ClientFailure("RETR-size", f"got {received} bytes, expected {expected}")
    return received


async def _stor(prepared: _Prepared, name: str, payload: bytes) -> int:
    control = prepared.control
    await control.command(f"STOR {name}", "150", "125")
    writer = prepared.data_writer
    try:
        writer.write(payload)
        await writer.drain()
        writer.close()
        await writer.wait_closed()
    except OSError as exc:
        raise ClientFailure("STOR-data", _describe(exc)) from exc
    await control.expect("STOR-end", "226", "250")
    return len(payload)


async def transfers(
    host: str,
    port: int,
    names: list[str],
    direction: str,
    user: str,
    password: str,
    *,
    payload: bytes = b"",
    expected: int = 0,
    setup_timeout: float = 30.0,
    timeout: float = 60.0,
) -> LoadResult:
    """One client per name, all at once.  Phase 1 (not timed): connect, log in, TYPE I,
    PASV and open the data connection.  Phase 2 (timed): every RETR/STOR in parallel,
    until the last 226.  ``bytes`` counts only transfers that completed correctly."""
    result = LoadResult(len(names))
    started = time.perf_counter()
    prepared = await _gather_outcomes(
        [_prepare(host, port, user, password) for _ in names], setup_timeout
    )
    result.setup_wall = time.perf_counter() - started
    ready = [
        (p, name) for p, name in zip(prepared, names, strict=True) if _record(result, p, "setup")
    ]
    try:
        if direction == "retr":
            jobs = [_retr(p, name, expected) for p, name in ready]
        else:
            jobs = [_stor(p, name, payload) for p, name in ready]
        started = time.perf_counter()
        outcomes = await _gather_outcomes(jobs, timeout)
        result.wall = time.perf_counter() - started
        for outcome in outcomes:
            if _record(result, outcome, direction.upper()):
                result.ok += 1
                result.bytes += outcome
    finally:  # untimed: leave politely (QUIT), abort whatever does not answer
        await _gather_outcomes([p.control.quit() for p, _ in ready], 5.0)
        for p, _ in ready:
            p.close()
    return result


# -- idle sessions -----------------------------------------------------------------------
async def open_idle(
    host: str, port: int, clients: int, user: str, password: str, timeout: float = 30.0
) -> tuple[list[Control], LoadResult]:
    """``clients`` logged-in control connections, left open for the caller."""

    async def one() -> Control:
        control = await Control.connect(host, port)
        try:
            await control.login(user, password)
        except BaseException:
            control.abort()
            raise
        return control

    result = LoadResult(clients)
    started = time.perf_counter()
    outcomes = await _gather_outcomes([one() for _ in range(clients)], timeout)
    result.wall = time.perf_counter() - started
    controls = [o for o in outcomes if _record(result, o, "login")]
    result.ok = len(controls)
    return controls, result


async def close_idle(controls: list[Control], timeout: float = 10.0) -> None:
    async def one(control: Control) -> None:
        try:
            await control.quit()
        except ClientFailure:
            control.abort()

    await _gather_outcomes([one(c) for c in controls], timeout)
    for control in controls:
        control.abort()
