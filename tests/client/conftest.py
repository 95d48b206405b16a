"""Real FTP servers for the client tests, plus a scripted one for odd replies.

``ftp_server`` runs every test against two independent servers: pyftpdlib (in a
thread) and gateway's own ``Server``.  If gateway's server cannot be imported, the
"gateway" variants fail with the import error instead of being skipped.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme

try:
    from gateway.server import Server as GatewayServer
    from gateway.users import Permission, User
except Exception as e:  # noqa: BLE001 - reported by the fixture, per test
    GATEWAY_IMPORT_ERROR: Exception | None = e
else:
    GATEWAY_IMPORT_ERROR = None

USER, PASSWORD = "user", "pass"
READONLY_USER, READONLY_PASSWORD = "ro", "ro"


@dataclass
class ServerInfo:
    host: str
    port: int
    root: Path
    kind: str

    def __iter__(self) -> Iterator[Any]:
        return iter((self.host, self.port, self.root))


@dataclass
class PyftpdlibThread:
    """pyftpdlib's loop polled in a thread, stopped between polls."""

    server: Any
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        def run() -> None:
            try:
                while not self.stop.is_set():
                    self.server.serve_forever(timeout=0.05, blocking=False, handle_exit=False)
            finally:
                self.server.close_all()

        self.thread = threading.Thread(target=run, name="pyftpdlib", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        assert self.thread is not None
        self.thread.join(timeout=10)

    @property
    def port(self) -> int:
        return self.server.address[1]


def start_pyftpdlib(root: Path, *, certfile: Path | None = None) -> PyftpdlibThread:
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler, TLS_FTPHandler
    from pyftpdlib.servers import FTPServer

    quiet = logging.getLogger("pyftpdlib")
    quiet.setLevel(logging.WARNING)
    if not quiet.handlers:
        # Without a handler pyftpdlib configures logging for the whole process.
        quiet.addHandler(logging.NullHandler())
    authorizer = DummyAuthorizer()
    authorizer.add_user(USER, PASSWORD, str(root), perm="elradfmwMT")
    authorizer.add_user(READONLY_USER, READONLY_PASSWORD, str(root), perm="elr")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "write permissions assigned to anonymous"
        authorizer.add_anonymous(str(root), perm="elradfmwMT")
    base = FTPHandler if certfile is None else TLS_FTPHandler
    attributes: dict[str, Any] = {
        "authorizer": authorizer,
        "banner": "pyftpdlib ready",
        "auth_failed_timeout": 0,
    }
    if certfile is not None:
        attributes["certfile"] = str(certfile)
    handler = type("TestHandler", (base,), attributes)
    thread = PyftpdlibThread(FTPServer(("127.0.0.1", 0), handler))
    thread.start()
    return thread


def gateway_users(root: Path) -> list[Any]:
    if GATEWAY_IMPORT_ERROR is not None:
        raise RuntimeError(
            f"gateway.server.Server is not importable: {GATEWAY_IMPORT_ERROR!r}"
        ) from GATEWAY_IMPORT_ERROR
    return [
        User(USER, PASSWORD, base_path=root),
        User(
            READONLY_USER,
            READONLY_PASSWORD,
            base_path=root,
            permissions=[Permission("/", readable=True, writable=False)],
        ),
        User(base_path=root),
    ]


@pytest.fixture(params=["pyftpdlib", "gateway"])
async def ftp_server(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ServerInfo]:
    """A real FTP server on 127.0.0.1 serving an empty ``root``."""
    root = tmp_path / "server-root"
    root.mkdir()
    if request.param == "pyftpdlib":
        thread = start_pyftpdlib(root)
        try:
            yield ServerInfo("127.0.0.1", thread.port, root, "pyftpdlib")
        finally:
            thread.close()
        return
    server = GatewayServer(gateway_users(root))
    await server.start("127.0.0.1", 0)
    try:
        yield ServerInfo("127.0.0.1", server.server_port, root, "gateway")
    finally:
        await server.close()


@dataclass
class TLSServerInfo(ServerInfo):
    implicit: bool = False
    client_context: ssl.SSLContext | None = None


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(params=["pyftpdlib-explicit", "gateway-explicit", "gateway-implicit"])
async def tls_server(
    request: pytest.FixtureRequest, tmp_path: Path, ca: trustme.CA
) -> AsyncIterator[TLSServerInfo]:
    """An FTPS server; gateway's explicit variant insists on TLS session reuse."""
    root = tmp_path / "tls-root"
    root.mkdir()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    kind, _, mode = request.param.partition("-")
    if kind == "pyftpdlib":
        certfile = tmp_path / "server.pem"
        cert.private_key_and_cert_chain_pem.write_to_path(str(certfile))
        thread = start_pyftpdlib(root, certfile=certfile)
        try:
            yield TLSServerInfo("127.0.0.1", thread.port, root, kind, False, client_context)
        finally:
            thread.close()
        return
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_context)
    if mode == "implicit":
        server = GatewayServer(gateway_users(root), ssl=server_context)
    else:
        server = GatewayServer(
            gateway_users(root),
            tls_context=server_context,
            require_tls=True,
            require_tls_session_reuse=True,
        )
    await server.start("127.0.0.1", 0)
    try:
        yield TLSServerInfo(
            "127.0.0.1", server.server_port, root, kind, mode == "implicit", client_context
        )
    finally:
        await server.close()


@pytest.fixture
def local(tmp_path: Path) -> Path:
    """The client's side of the disk."""
    path = tmp_path / "local"
    path.mkdir()
    return path


# --- a scripted server for replies real servers rarely send --------------------

Handler = Callable[["Session", str], Awaitable[None]]


class Session:
    """One control connection of ``ScriptedServer``."""

    def __init__(self, server: ScriptedServer, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.writer = writer
        self.data: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] | None = None
        self.listener: asyncio.Server | None = None

    async def send(self, *lines: str) -> None:
        self.writer.write("".join(line + "\r\n" for line in lines).encode())
        await self.writer.drain()

    async def open_passive(self) -> int:
        """Listen for one data connection; returns the port."""
        loop = asyncio.get_running_loop()
        self.data = loop.create_future()
        data = self.data

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if not data.done():
                data.set_result((reader, writer))

        self.listener = await asyncio.start_server(accept, "127.0.0.1", 0)
        return self.listener.sockets[0].getsockname()[1]

    async def send_data(self, payload: bytes, *, final: str = "226 done") -> None:
        """150, the payload on the data connection, then the final reply."""
        assert self.data is not None and self.listener is not None
        _, writer = await self.data
        await self.send("150 here it comes")
        writer.write(payload)
        await writer.drain()
        writer.close()
        self.listener.close()
        await self.send(final)


async def pasv(session: Session, _: str, *, address: str = "127,0,0,1") -> None:
    port = await session.open_passive()
    await session.send(f"227 Entering Passive Mode ({address},{port >> 8},{port & 255})")


async def epsv(session: Session, _: str) -> None:
    port = await session.open_passive()
    await session.send(f"229 Entering Extended Passive Mode (|||{port}|)")


def reply(*lines: str) -> Handler:
    async def handler(session: Session, _: str) -> None:
        await session.send(*lines)

    return handler


class ScriptedServer:
    """A tiny FTP server whose replies are given per verb; records what it got."""

    def __init__(self, handlers: dict[str, Handler], greeting: tuple[str, ...]) -> None:
        self.handlers = {
            "TYPE": reply("200 ok"),
            "QUIT": reply("221 bye"),
            "USER": reply("230 welcome"),
            **handlers,
        }
        self.greeting = greeting
        self.received: list[str] = []
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(self, writer)
        try:
            await session.send(*self.greeting)
            while line := await reader.readline():
                command = line.decode().rstrip("\r\n")
                self.received.append(command)
                verb, _, argument = command.partition(" ")
                handler = self.handlers.get(verb.upper(), reply("502 not implemented"))
                await handler(session, argument)
                if verb.upper() == "QUIT":
                    break
        except ConnectionError:
            pass
        finally:
            writer.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]


@pytest.fixture
async def scripted() -> AsyncIterator[Callable[..., Awaitable[ScriptedServer]]]:
    """Factory: ``await scripted({"VERB": handler}, greeting=(...))``."""
    servers: list[ScriptedServer] = []

    async def factory(
        handlers: dict[str, Handler] | None = None, greeting: tuple[str, ...] = ("220 hi",)
    ) -> ScriptedServer:
        server = ScriptedServer(handlers or {}, greeting)
        server.server = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        assert server.server is not None
        server.server.close()
