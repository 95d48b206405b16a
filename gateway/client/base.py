"""The client's side of the control connection: connect, send, read replies.

``BaseClient`` is the low level half of aioftp's client API.  The parsing itself
lives in ``gateway.client.parsers`` (pure functions); the methods here bind them to
the client's encoding and keep aioftp's names and signatures so subclasses written
for aioftp keep working.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import ssl as ssl_module
from collections.abc import Callable, Iterable
from pathlib import PurePosixPath
from typing import Any

from backends import PathIO
from gateway import errors
from gateway.client import parsers
from gateway.common import (
    DEFAULT_PORT,
    END_OF_LINE,
    Code,
    SSLSessionBoundContext,
    wrap_into_codes,
)
from gateway.streams import ThrottleStreamIO
from gateway.throttle import StreamThrottle

__all__ = ("BaseClient",)

logger = logging.getLogger("gateway.client")

Codes = str | int | Iterable[str | int]
ListLineParser = Callable[[bytes], tuple[PurePosixPath, dict]]


class ControlStreamIO(ThrottleStreamIO):
    """The control connection's stream, which can turn into TLS (``AUTH TLS``)."""

    async def start_tls(
        self, sslcontext: ssl_module.SSLContext, server_hostname: str | None = None
    ) -> None:
        """Run the TLS handshake on the open connection, bounded by the read timeout."""
        await self.writer.start_tls(
            sslcontext, server_hostname=server_hostname, ssl_handshake_timeout=self.read_timeout
        )


class _ExactSocksIO:
    """siosocks I/O that never reads past the proxy's reply.

    siosocks' own ``open_connection`` reads in blocks and drops whatever follows
    the SOCKS reply; an FTP server speaks first, so its greeting often arrives in
    the same segment and would be lost.  Reading one byte at a time costs a few
    dozen reads per connection and keeps the greeting in the stream.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def read(self) -> bytes:
        return await self.reader.read(1)

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def connect(self, *_: Any) -> None:
        raise RuntimeError("a SOCKS client does not connect onwards")

    async def passthrough(self) -> None:
        return None


async def _open_socks_connection(
    host: str,
    port: int,
    *,
    socks_host: str,
    socks_port: int,
    socks_version: int,
    username: str | None = None,
    password: str | None = None,
    encoding: str = "utf-8",
    socks4_extras: dict | None = None,
    socks5_extras: dict | None = None,
    **open_connection_extras: Any,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """``siosocks.io.asyncio.open_connection``'s arguments, without its read-ahead."""
    try:
        from siosocks.interface import async_engine
        from siosocks.protocol import SocksClient
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("SOCKS proxy support needs siosocks: pip install gateway[socks]") from e
    reader, writer = await asyncio.open_connection(socks_host, socks_port, **open_connection_extras)
    try:
        protocol = SocksClient(
            host,
            port,
            socks_version,
            username=username,
            password=password,
            encoding=encoding,
            socks4_extras=socks4_extras or {},
            socks5_extras=socks5_extras or {},
        )
        await async_engine(protocol, _ExactSocksIO(reader, writer))
    except BaseException:
        writer.close()
        raise
    return reader, writer


class BaseClient:
    """Control connection, replies and passive data connections.

    ``ssl`` makes the control connection (and every data connection) TLS from the
    first byte (implicit FTPS); ``Client.upgrade_to_tls`` does the explicit kind.
    ``passive=False`` switches data connections to active mode (the client listens
    and sends EPRT/PORT, in ``active_commands`` order), for servers or firewalls
    that allow nothing else.
    Extra keyword arguments (``socks_host``, ``socks_port``, ``socks_version``,
    ``username``, ``password``, ...) are handed to ``siosocks`` to reach the server
    through a SOCKS proxy.
    """

    def __init__(
        self,
        *,
        socket_timeout: float | None = None,
        connection_timeout: float | None = None,
        read_speed_limit: int | None = None,
        write_speed_limit: int | None = None,
        path_timeout: float | None = None,
        path_io_factory: Callable[..., Any] = PathIO,
        encoding: str = "utf-8",
        ssl: ssl_module.SSLContext | bool | None = None,
        parse_list_line_custom: ListLineParser | None = None,
        parse_list_line_custom_first: bool = True,
        passive_commands: Iterable[str] = ("epsv", "pasv"),
        passive: bool = True,
        active_commands: Iterable[str] = ("eprt", "port"),
        **siosocks_asyncio_kwargs: Any,
    ) -> None:
        self.socket_timeout = socket_timeout
        self.connection_timeout = connection_timeout
        self.throttle = StreamThrottle.from_limits(read_speed_limit, write_speed_limit)
        self.path_timeout = path_timeout
        self.path_io = path_io_factory(timeout=path_timeout)
        self.encoding = encoding
        self.stream: ControlStreamIO | None = None
        self.ssl = ssl
        self.parse_list_line_custom = parse_list_line_custom
        self.parse_list_line_custom_first = parse_list_line_custom_first
        self._passive_commands = tuple(passive_commands)
        self.passive = passive
        self._active_commands = tuple(active_commands)
        self._siosocks_asyncio_kwargs = siosocks_asyncio_kwargs
        self.server_host: str | None = None
        self.server_port: int | None = None
        # TLS of data connections: the context to use and, once the control
        # connection is TLS, the session they resume (servers may insist on it).
        self._data_ssl: ssl_module.SSLContext | None = None
        self._tls_session_source: ssl_module.SSLObject | None = None

    # --- connections ------------------------------------------------------------

    def _ssl_context(self) -> ssl_module.SSLContext | None:
        if self.ssl is None or self.ssl is False:
            return None
        if self.ssl is True:
            return ssl_module.create_default_context()
        return self.ssl

    async def _open_connection(
        self, host: str, port: int, *, ssl: Any = None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Open a TCP (or SOCKS-proxied) connection, TLS when ``ssl`` is given."""
        coro = self._connect_raw(host, port, ssl)
        if self.connection_timeout is None:
            return await coro
        async with asyncio.timeout(self.connection_timeout):
            return await coro

    async def _connect_raw(
        self, host: str, port: int, ssl: Any
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        kwargs = self._siosocks_asyncio_kwargs
        if not kwargs.get("socks_host"):
            return await asyncio.open_connection(
                host, port, ssl=ssl, server_hostname=host if ssl else None
            )
        reader, writer = await _open_socks_connection(host, port, **kwargs)
        if ssl:
            # start_tls accepts only a real SSLContext, so through a proxy data
            # connections cannot offer the control connection's session.
            if isinstance(ssl, SSLSessionBoundContext):
                ssl = ssl.context
            await writer.start_tls(ssl, server_hostname=host)
        return reader, writer

    async def connect(self, host: str, port: int = DEFAULT_PORT) -> list[str]:
        """Open the control connection; ``Client.connect`` also reads the greeting."""
        self.server_host = host
        self.server_port = port
        context = self._ssl_context()
        reader, writer = await self._open_connection(host, port, ssl=context)
        self.stream = ControlStreamIO(
            reader,
            writer,
            throttles={"_": self.throttle},
            timeout=self.socket_timeout,
        )
        if context is not None:
            self._data_ssl = context
            self._tls_session_source = writer.get_extra_info("ssl_object")
        return []

    def close(self) -> None:
        """Drop the control connection without a QUIT (safe to call twice)."""
        if self.stream is not None:
            self.stream.close()

    def _data_connection_ssl(self) -> Any:
        """What a data connection's TLS uses: the control session, resumed."""
        if self._data_ssl is None:
            return None
        session = None
        if self._tls_session_source is not None:
            session = self._tls_session_source.session
        return SSLSessionBoundContext(self._data_ssl, session)

    # --- replies ----------------------------------------------------------------

    async def parse_line(self) -> tuple[Code, str]:
        """Read one reply line; an empty read means the server hung up."""
        if self.stream is None:
            raise ConnectionError("not connected")
        line = await self.stream.readline()
        if not line:
            self.stream.close()
            raise ConnectionResetError("connection closed by the server")
        text = line.decode(encoding=self.encoding)
        logger.debug(text.rstrip("\r\n"))
        return parsers.parse_reply_line(text)

    async def parse_response(self) -> tuple[Code, list[str]]:
        """Read one complete, possibly multi-line, reply."""
        reply = parsers.MultilineReply()
        try:
            while not reply.feed(*await self.parse_line()):
                pass
        except parsers.ReplySequenceError as e:
            raise errors.StatusCodeError(e.code, e.received, e.info) from e
        assert reply.code is not None
        return reply.code, reply.info

    def check_codes(self, expected_codes: Codes, received_code: Code, info: list[str]) -> None:
        """Raise ``StatusCodeError`` unless the code matches one of the masks."""
        expected = wrap_into_codes(expected_codes)
        if not any(received_code.matches(mask) for mask in expected):
            raise errors.StatusCodeError(expected, received_code, info)

    async def command(
        self,
        command: str | None = None,
        expected_codes: Codes = (),
        wait_codes: Codes = (),
        censor_after: int | None = None,
    ) -> tuple[Code, list[str]] | None:
        """Send a command (if any) and read replies.

        Replies matching ``wait_codes`` (preliminary ``1xx`` usually) are read
        past; the next one is checked against ``expected_codes`` and returned.
        With neither, nothing is read, which lets callers pipeline.
        A command with CR or LF in it would be two commands on the wire (an
        argument smuggling a ``DELE``), so it raises ``InvalidCommand`` unsent.
        """
        expected = wrap_into_codes(expected_codes)
        waits = wrap_into_codes(wait_codes)
        if command:
            if "\r" in command or "\n" in command:
                raise errors.InvalidCommand(f"CR or LF inside the command {command!r}")
            if self.stream is None:
                raise ConnectionError("not connected")
            if censor_after:
                shown = command[:censor_after] + "*" * len(command[censor_after:])
            else:
                shown = command
            logger.debug(shown)
            await self.stream.write((command + END_OF_LINE).encode(encoding=self.encoding))
        if not expected and not waits:
            return None
        code, info = await self.parse_response()
        while any(code.matches(mask) for mask in waits):
            code, info = await self.parse_response()
        if expected:
            self.check_codes(expected, code, info)
        return code, info

    async def _reply(
        self,
        command: str | None,
        expected_codes: Codes,
        wait_codes: Codes = (),
        censor_after: int | None = None,
    ) -> tuple[Code, list[str]]:
        """``command`` with codes to check, which always reads and returns a reply."""
        reply = await self.command(command, expected_codes, wait_codes, censor_after)
        assert reply is not None
        return reply

    # --- passive data connections ---------------------------------------------

    async def _do_epsv(self) -> tuple[None, int]:
        _, info = await self._reply("EPSV", "229")
        return self.parse_epsv_response(info[-1])

    async def _do_pasv(self) -> tuple[str, int]:
        _, info = await self._reply("PASV", "227")
        return self.parse_pasv_response(info[-1])

    async def _passive_address(self, commands: Iterable[str]) -> tuple[str | None, int]:
        """Try EPSV/PASV in order; a command the server does not know is dropped
        for the rest of the session so later transfers skip the round trip."""
        names = [name.lower() for name in commands]
        if not names:
            raise ValueError("no passive commands to try")
        handlers = {"epsv": self._do_epsv, "pasv": self._do_pasv}
        for index, name in enumerate(names):
            if name not in handlers:
                raise ValueError(f"unknown passive command {name!r}")
            try:
                return await handlers[name]()
            except errors.StatusCodeError as e:
                last = index == len(names) - 1
                if last or not any(c.matches("50x") for c in e.received_codes):
                    raise
                remaining = tuple(c for c in self._passive_commands if c.lower() != name)
                if remaining:
                    self._passive_commands = remaining
        raise AssertionError("unreachable")

    async def _open_data_connection(
        self, commands: Iterable[str]
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        ip, port = await self._passive_address(commands)
        assert self.server_host is not None
        host = parsers.choose_passive_host(ip, self.server_host)
        return await self._open_connection(host, port, ssl=self._data_connection_ssl())

    # --- parsers bound to this client -------------------------------------------

    @staticmethod
    def parse_epsv_response(s: str) -> tuple[None, int]:
        return parsers.parse_epsv_response(s)

    @staticmethod
    def parse_pasv_response(s: str) -> tuple[str, int]:
        return parsers.parse_pasv_response(s)

    @staticmethod
    def parse_directory_response(s: str) -> PurePosixPath:
        return parsers.parse_directory_response(s)

    @staticmethod
    def parse_unix_mode(s: str) -> int:
        return parsers.parse_unix_mode(s)

    @staticmethod
    def format_date_time(d: datetime.datetime) -> str:
        return parsers.format_date_time(d)

    @classmethod
    def parse_ls_date(cls, s: str, *, now: datetime.datetime | None = None) -> str:
        return parsers.parse_ls_date(s, now=now)

    def _decode(self, b: bytes | str) -> str:
        return b if isinstance(b, str) else b.decode(encoding=self.encoding)

    def parse_list_line_unix(self, b: bytes) -> tuple[PurePosixPath, dict]:
        return parsers.parse_list_line_unix(self._decode(b))

    def parse_list_line_windows(self, b: bytes) -> tuple[PurePosixPath, dict]:
        return parsers.parse_list_line_windows(self._decode(b))

    def parse_list_line(self, b: bytes) -> tuple[PurePosixPath, dict]:
        """Try the custom parser (first or last), then unix, then windows.

        A parser that understood the line but found no entry in it (``.``, ``..``)
        ends the search with ``NotAnEntry``.
        """
        chain: list[ListLineParser | None] = [
            self.parse_list_line_unix,
            self.parse_list_line_windows,
        ]
        if self.parse_list_line_custom_first:
            chain.insert(0, self.parse_list_line_custom)
        else:
            chain.append(self.parse_list_line_custom)
        failures: list[Exception] = []
        for parser in chain:
            if parser is None:
                continue
            try:
                return parser(b)
            except parsers.NotAnEntry:
                raise
            except (ValueError, KeyError, IndexError) as e:
                failures.append(e)
        raise ValueError("no parser understood the LIST line", b, failures)

    def parse_mlsx_line(self, b: bytes | str) -> tuple[PurePosixPath, dict]:
        return parsers.parse_mlsx_line(self._decode(b))
