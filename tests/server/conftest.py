"""Fixtures for the server suite: a real ``gateway.Server`` on loopback, real clients.

One style everywhere: the server runs in the test's own event loop; ftplib (blocking)
runs in a worker thread through ``asyncio.to_thread``; ``gateway.Client`` and the raw
client below run in the loop next to the server.  Nothing waits by sleeping: every
step waits for a reply, an EOF or a task.
"""

from __future__ import annotations

import asyncio
import ftplib
import os
import re
import socket
import ssl
import traceback
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

import gateway
from gateway import Permission, Server, User

HOST = "127.0.0.1"


def pytest_asyncio_loop_factories(config: Any, item: Any) -> dict[str, Callable[[], Any]]:
    """uvloop (what production runs on) for test_uvloop.py, asyncio's loop elsewhere."""
    if item.path.name == "test_uvloop.py":
        import uvloop

        return {"uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}


#: Generous per-step timeout: a step that takes this long is a hang, not slowness.
STEP = 10.0


# ----------------------------------------------------------------------------- servers


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The served directory (``tmp_path`` itself stays outside it, for escape tests)."""
    path = tmp_path / "root"
    path.mkdir()
    return path


@pytest.fixture
async def make_server(root: Path) -> AsyncIterator[Callable[..., Any]]:
    """``await make_server(users=None, cls=Server, **options)``: started, closed after.

    Without ``users`` the server has one anonymous read/write user on ``root``.
    """
    servers: list[Server] = []

    async def make(users: Any = None, *, cls: type[Server] = Server, **options: Any) -> Server:
        if users is None:
            users = (User(base_path=root),)
        server = cls(users, **options)
        await server.start(HOST, 0)
        servers.append(server)
        return server

    yield make
    for server in servers:
        async with asyncio.timeout(STEP):
            await server.close()


@pytest.fixture
async def server(make_server: Callable[..., Any]) -> Server:
    return await make_server()


# ----------------------------------------------------------------------------- ftplib


def ftp_connect(port: int, *, cls: type[ftplib.FTP] = ftplib.FTP, **kwargs: Any) -> ftplib.FTP:
    ftp = cls(timeout=STEP, **kwargs)
    ftp.connect(HOST, port)
    return ftp


def ftp_login(port: int, user: str = "anonymous", passwd: str = "", **kwargs: Any) -> ftplib.FTP:
    ftp = ftp_connect(port, **kwargs)
    ftp.login(user, passwd)
    return ftp


async def in_thread(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a blocking ftplib scenario off the loop (the server keeps serving)."""

    def traced() -> Any:
        # the thread's own traceback (which ftplib call failed) is otherwise lost
        try:
            return func(*args, **kwargs)
        except BaseException:
            traceback.print_exc()
            raise

    async with asyncio.timeout(30):
        return await asyncio.to_thread(traced)


def retr_bytes(ftp: ftplib.FTP, name: str) -> bytes:
    chunks: list[bytes] = []
    ftp.retrbinary("RETR " + name, chunks.append)
    return b"".join(chunks)


def list_lines(ftp: ftplib.FTP, command: str = "LIST") -> list[str]:
    lines: list[str] = []
    ftp.retrlines(command, lines.append)
    return lines


def expect_error(code: str, func: Callable[..., Any], *args: Any) -> str:
    """Run an ftplib call that must fail with ``code``; return the reply text."""
    try:
        result = func(*args)
    except ftplib.all_errors as exc:
        text = str(exc)
        assert text[:3] == code, text
        return text
    raise AssertionError(f"expected {code}, got {result!r}")


# ----------------------------------------------------------------------------- raw client


@dataclass
class Reply:
    code: str
    lines: list[str]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


class RawClient:
    """A control connection driven byte by byte, for what real clients never send."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(
        cls, port: int, *, greeting: bool = True, ssl_context: ssl.SSLContext | None = None
    ) -> RawClient:
        async with asyncio.timeout(STEP):
            reader, writer = await asyncio.open_connection(
                HOST, port, ssl=ssl_context, server_hostname=HOST if ssl_context else None
            )
        client = cls(reader, writer)
        if greeting:
            reply = await client.reply()
            assert reply.code == "220", reply
        return client

    async def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = (data + "\r\n").encode("utf-8", "surrogateescape")
        self.writer.write(data)
        await self.writer.drain()

    async def line(self) -> str:
        async with asyncio.timeout(STEP):
            raw = await self.reader.readline()
        if not raw:
            raise EOFError("server closed the control connection")
        return raw.decode("utf-8", "surrogateescape").rstrip("\r\n")

    async def reply(self) -> Reply:
        first = await self.line()
        assert re.match(r"^\d{3}[ -]", first), first
        code, lines = first[:3], [first[4:]]
        if first[3] == "-":
            while True:
                line = await self.line()
                if line.startswith(code + " "):
                    lines.append(line[4:])
                    break
                lines.append(line)
        return Reply(code, lines)

    async def cmd(self, line: str | bytes) -> Reply:
        await self.send(line)
        return await self.reply()

    async def expect(self, line: str | bytes, code: str) -> Reply:
        reply = await self.cmd(line)
        assert reply.code == code, (line, reply)
        return reply

    async def login(self, user: str = "anonymous", password: str = "") -> None:
        reply = await self.cmd(f"USER {user}")
        if reply.code == "331":
            reply = await self.cmd(f"PASS {password}")
        assert reply.code == "230", reply

    async def pasv(self) -> int:
        reply = await self.expect("EPSV", "229")
        match = re.search(r"\(\|\|\|(\d+)\|\)", reply.text)
        assert match, reply
        return int(match.group(1))

    async def open_data(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        port = await self.pasv()
        async with asyncio.timeout(STEP):
            return await asyncio.open_connection(HOST, port)

    async def at_eof(self) -> bool:
        """True when the server closed the connection (reads until EOF or a reset)."""
        try:
            async with asyncio.timeout(STEP):
                data = await self.reader.read()
        except ConnectionError:
            return True
        return data == b"" or self.reader.at_eof()

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass


@pytest.fixture
async def raw_clients() -> AsyncIterator[list[RawClient]]:
    """A list the test appends its raw clients to; closed after the test."""
    clients: list[RawClient] = []
    yield clients
    for client in clients:
        await client.close()


@pytest.fixture
def raw(raw_clients: list[RawClient]) -> Callable[..., Any]:
    """``await raw(server, login=True)``: a connected (and logged in) raw client."""

    async def connect(server: Server, *, login: bool = True, **kwargs: Any) -> RawClient:
        client = await RawClient.connect(server.server_port, **kwargs)
        raw_clients.append(client)
        if login:
            await client.login()
        return client

    return connect


async def read_all(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(STEP):
        return await reader.read()


def reset_socket(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0: the peer sees a TCP RST, not a clean end."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    writer.transport.abort()


async def session_task(server: Server, before: set[Any]) -> asyncio.Task:
    """The session task created since ``before`` (a snapshot of ``server.sessions``)."""
    new = set(server.sessions) - before
    assert len(new) == 1, new
    return new.pop()


# ----------------------------------------------------------------------------- gateway.Client


@pytest.fixture
async def client_factory() -> AsyncIterator[Callable[..., Any]]:
    """``await client_factory(server, login=True, **client_options)``: a gateway.Client."""
    clients: list[gateway.Client] = []

    async def make(server: Server, *, login: bool = True, **options: Any) -> gateway.Client:
        client = gateway.Client(socket_timeout=STEP, **options)
        clients.append(client)
        await client.connect(HOST, server.server_port)
        if login:
            await client.login()
        return client

    yield make
    for client in clients:
        client.close()


# ----------------------------------------------------------------------------- TLS


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(HOST, "localhost").configure_cert(context)
    return context


@pytest.fixture(scope="session")
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def client_tls_version(ca: trustme.CA, version: ssl.TLSVersion) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    context.minimum_version = version
    context.maximum_version = version
    return context


# ----------------------------------------------------------------------------- misc


def random_bytes(size: int) -> bytes:
    return os.urandom(size)


__all__ = (
    "HOST",
    "STEP",
    "Permission",
    "RawClient",
    "Reply",
    "User",
    "client_tls_version",
    "expect_error",
    "ftp_connect",
    "ftp_login",
    "in_thread",
    "list_lines",
    "random_bytes",
    "read_all",
    "reset_socket",
    "retr_bytes",
    "session_task",
)
