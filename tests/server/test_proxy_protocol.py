"""A listener behind a load balancer: the PROXY protocol on real sockets.

The test itself plays the balancer: a connection from 127.0.0.1 (trusted) starts
with the header a balancer would send, then carries FTP (ftplib, handed the socket
after the header) or a TLS handshake.  Other loopback addresses (127.0.0.2, .3)
are clients that reach the server directly.  What is checked: the client the header
names is the session's address for everything (logs, events, bans, limits, network
rules, the passive-connection check); untrusted headers and trusted connections
without a header are refused; no byte after a header is lost, even when the
header, the FTP command or the TLS ClientHello arrive in one segment.
"""

from __future__ import annotations

import asyncio
import ftplib
import io
import logging
import re
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway import Permission, Server, User
from gateway.protocol.proxyheader import build_v1, build_v2
from gateway.server.events import ServerEvents
from gateway.users import MemoryUserManager
from gateway.users.database.limiter import LimiterSettings, LoginLimiter

from .conftest import HOST, STEP, in_thread, list_lines, retr_bytes

BALANCER = "127.0.0.1"  # trusted: the tests' own default source address
CLIENT = "127.0.0.2"  # a client reaching the server directly (or named in headers)
STRANGER = "127.0.0.3"  # another untrusted address
BUILD = {"v1": build_v1, "v2": build_v2}


class Seen(ServerEvents):
    """Each session's addresses as the server saw them."""

    def __init__(self) -> None:
        self.sessions: list[tuple[str, int, str, str | None]] = []

    def session_opened(self, session: Any) -> None:
        self.sessions.append((session.client_host, session.client_port, session.peer_host,
                              session.relayed_by))


class RelayedFTP(ftplib.FTP):
    """ftplib as if through a balancer: each connection it opens (control, passive
    data) starts with a PROXY header; ``None`` sends none (a direct connection)."""

    header: bytes | None = None
    data_header: bytes | None = None
    data_source: str | None = None

    def connect(self, host: str = "", port: int = 0, timeout: float = -999,
                source_address: Any = None) -> str:
        self.host, self.port = host, port
        sock = socket.create_connection((host, port), self.timeout, source_address=self.source_address)
        if self.header is not None:
            sock.sendall(self.header)
        self.sock = sock
        self.af = sock.family
        self.file = sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        return self.welcome

    def ntransfercmd(self, cmd: str, rest: Any = None) -> tuple[socket.socket, int | None]:
        host, port = self.makepasv()
        source = (self.data_source, 0) if self.data_source else self.source_address
        conn = socket.create_connection((host, port), self.timeout, source_address=source)
        size = None
        try:
            if self.data_header is not None:
                conn.sendall(self.data_header)
            if rest is not None:
                self.sendcmd(f"REST {rest}")
            resp = self.sendcmd(cmd)
            if resp[0] == "2":
                resp = self.getresp()
            if resp[0] != "1":
                raise ftplib.error_reply(resp)
        except BaseException:
            conn.close()
            raise
        if resp[:3] == "150":
            size = ftplib.parse150(resp)
        return conn, size


class RelayedFTPTLS(ftplib.FTP_TLS, RelayedFTP):
    """The same with AUTH TLS; a protected data connection's TLS follows its header."""


def relayed(port: int, header: bytes | None, *, data_header: bytes | None = None,
            source: str | None = None, cls: type[RelayedFTP] = RelayedFTP, **kwargs: Any) -> RelayedFTP:
    ftp = cls(timeout=STEP, source_address=(source, 0) if source else None, **kwargs)
    ftp.header = header
    ftp.data_header = header if data_header is None else data_header
    ftp.connect(HOST, port)
    return ftp


def alice(root: Path, **options: Any) -> User:
    return User("alice", "right", base_path=root, permissions=[Permission("/", writable=True)], **options)


@pytest.fixture
async def proxied(make_server: Callable[..., Any], root: Path) -> Callable[..., Any]:
    """``await proxied(users=None, mode="any", **options)``: a server trusting BALANCER."""

    async def make(users: Any = None, *, mode: str = "any", **options: Any) -> Server:
        options.setdefault("proxy_header_timeout", 2.0)
        return await make_server(
            users if users is not None else [alice(root)],
            proxy_protocol=mode, proxy_trusted=[f"{BALANCER}/32"], **options,
        )

    return make


def closed_without_greeting(port: int, data: bytes, source: str | None = None) -> bytes:
    """Send ``data`` on a new connection; all the server answers before closing."""
    with socket.create_connection((HOST, port), STEP, source_address=(source, 0) if source else None) as sock:
        if data:
            sock.sendall(data)
        received = b""
        try:
            while chunk := sock.recv(4096):
                received += chunk
        except ConnectionResetError:  # closed with our bytes unread: a reset
            pass
        return received


# ----------------------------------------------------------------------------- the client's address


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_the_header_names_the_client_everywhere(proxied, root: Path, version: str, caplog) -> None:
    caplog.set_level(logging.INFO, logger="gateway")
    seen = Seen()
    server = await proxied(events=seen)
    (root / "hello.txt").write_bytes(b"hello through the balancer\n")
    header = BUILD[version](("192.0.2.7", 40000), ("198.51.100.1", 21))

    def session() -> tuple[bytes, list[str]]:
        ftp = relayed(server.server_port, header)
        try:
            ftp.login("alice", "right")
            ftp.storbinary("STOR up.bin", io.BytesIO(b"x" * 100_000))
            return retr_bytes(ftp, "hello.txt"), list_lines(ftp, "NLST")
        finally:
            ftp.quit()

    content, names = await in_thread(session)
    assert content == b"hello through the balancer\n"
    assert sorted(names) == ["hello.txt", "up.bin"]
    assert (root / "up.bin").stat().st_size == 100_000
    assert seen.sessions == [("192.0.2.7", 40000, BALANCER, BALANCER)]
    assert "connection from 192.0.2.7:40000 via balancer 127.0.0.1" in caplog.text
    assert "refused" not in caplog.text


async def test_ipv6_client_through_an_ipv4_balancer(proxied, root: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="gateway")
    seen = Seen()
    server = await proxied(events=seen, mode="v2")
    (root / "f").write_bytes(b"six")
    header = build_v2(("2001:db8::7", 4444), ("2001:db8::1", 21))

    def session() -> bytes:
        ftp = relayed(server.server_port, header)
        try:
            ftp.login("alice", "right")
            return retr_bytes(ftp, "f")  # PASV: the node's own address is IPv4
        finally:
            ftp.quit()

    assert await in_thread(session) == b"six"
    assert seen.sessions == [("2001:db8::7", 4444, BALANCER, BALANCER)]
    assert "connection from [2001:db8::7]:4444 via balancer 127.0.0.1" in caplog.text


async def test_bytes_after_the_header_in_the_same_segment_are_ftp(proxied) -> None:
    """The header and the first commands in one write: nothing after the header is lost."""
    server = await proxied()
    for header in (build_v1(("192.0.2.7", 1)), build_v2(("192.0.2.7", 1), tlvs=((4, b"pad"),)),
                   build_v2(None), build_v1(None)):
        reader, writer = await asyncio.open_connection(HOST, server.server_port)
        writer.write(header + b"SYST\r\nNOOP\r\nQUIT\r\n")
        async with asyncio.timeout(STEP):
            replies = (await reader.read()).decode().splitlines()
        writer.close()
        assert [line[:3] for line in replies] == ["220", "215", "200", "221"], (header, replies)


async def test_a_header_sent_in_pieces(proxied) -> None:
    """A header split over several segments, the last one carrying FTP too."""
    seen = Seen()
    server = await proxied(events=seen)
    for header in (build_v1(("192.0.2.7", 1), ("198.51.100.1", 21)), build_v2(("192.0.2.8", 2))):
        reader, writer = await asyncio.open_connection(HOST, server.server_port)
        pieces = [header[:3], header[3:17], header[17:-1], header[-1:] + b"SYST\r\n"]
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.02)
        async with asyncio.timeout(STEP):
            assert await reader.readline() == b"220 welcome\r\n"
            assert await reader.readline() == b"215 UNIX Type: L8\r\n"
        writer.close()
    assert [host for host, *_ in seen.sessions] == ["192.0.2.7", "192.0.2.8"]


async def test_local_and_unknown_keep_the_connection_address(proxied, caplog) -> None:
    """v2 LOCAL (a health check) and v1 UNKNOWN: the peer's own address stands; the
    health check's session is logged at debug level only."""
    caplog.set_level(logging.INFO, logger="gateway")
    seen = Seen()
    server = await proxied(events=seen)
    for header in (build_v2(None), build_v1(None)):
        await in_thread(lambda h=header: relayed(server.server_port, h).quit())
    assert [(host, peer, via) for host, _, peer, via in seen.sessions] == [
        (BALANCER, BALANCER, None), (BALANCER, BALANCER, None),
    ]
    assert "PROXY LOCAL" not in caplog.text  # debug only
    assert "(balancer; its header names no client address)" in caplog.text


# ----------------------------------------------------------------------------- bans, limits, rules


async def test_bans_limits_and_network_rules_use_the_header_address(proxied, root: Path) -> None:
    users = MemoryUserManager([alice(root, deny_from=["192.0.2.66/32"])])
    users.login_limiter = LoginLimiter(  # type: ignore[attr-defined]
        LimiterSettings(base_delay=0, max_delay=0, ban_after=2, account_lock_after=0)
    )
    server = await proxied(users, maximum_connections_per_address=1, deny_from=["203.0.113.0/24"])
    port = server.server_port
    guesser = build_v2(("192.0.2.10", 1))
    other = build_v2(("192.0.2.11", 1))

    def login(header: bytes, password: str) -> str:
        ftp = relayed(port, header)
        try:
            return ftp.login("alice", password)
        except ftplib.Error as exc:
            return str(exc)
        finally:
            ftp.close()

    def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        seen["guesses"] = [login(guesser, "wrong"), login(guesser, "wrong")]
        try:
            seen["banned"] = login(guesser, "right")
        except ftplib.error_temp as exc:
            seen["banned"] = str(exc)
        seen["other"] = login(other, "right")  # same balancer, another client: fine
        # the account's own denied network, judged on the header's address
        seen["account"] = login(build_v2(("192.0.2.66", 1)), "right")
        # the server's denied network: 421 instead of the greeting
        try:
            relayed(port, build_v1(("203.0.113.5", 1)))
            seen["server"] = "greeted"
        except ftplib.error_temp as exc:
            seen["server"] = str(exc)
        # one connection per client address, though all come from the same balancer
        holder = relayed(port, build_v2(("192.0.2.20", 1)))
        try:
            second = relayed(port, build_v2(("192.0.2.21", 1)))
            second.close()
            try:
                relayed(port, build_v2(("192.0.2.20", 2)))
                seen["limit"] = "greeted"
            except ftplib.error_temp as exc:
                seen["limit"] = str(exc)
        finally:
            holder.close()
        return seen

    seen = await in_thread(scenario)
    assert seen["guesses"] == ["530 wrong password", "530 wrong password"]
    assert seen["banned"].startswith("421")
    assert seen["other"].startswith("230")
    assert seen["account"] == "530 wrong password"
    assert seen["server"].startswith("421 service not available for your address")
    assert seen["limit"].startswith("421 too many connections from your address")


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_a_header_from_an_untrusted_peer_is_refused(proxied, version: str, caplog) -> None:
    caplog.set_level(logging.INFO, logger="gateway")
    seen = Seen()
    server = await proxied(events=seen)
    header = BUILD[version](("192.0.2.7", 1))
    received = await in_thread(closed_without_greeting, server.server_port, header + b"USER alice\r\n",
                               STRANGER)
    # the greeting went out at once (a direct client waits for it), nothing after it
    assert received.decode().splitlines() == ["220 welcome"]
    assert f"connection from {STRANGER}:" in caplog.text
    assert "it sent a PROXY header but is not a trusted balancer" in caplog.text
    assert [host for host, *_ in seen.sessions] == [STRANGER]


async def test_an_untrusted_peer_without_header_is_a_direct_client(proxied, root: Path) -> None:
    seen = Seen()
    server = await proxied(events=seen)
    (root / "f").write_bytes(b"direct")

    def session() -> bytes:
        ftp = relayed(server.server_port, None, source=CLIENT)
        try:
            ftp.login("alice", "right")
            ftp.sendcmd("NOOP")
            return retr_bytes(ftp, "f")
        finally:
            ftp.quit()

    assert await in_thread(session) == b"direct"
    assert [(host, peer, via) for host, _, peer, via in seen.sessions] == [(CLIENT, CLIENT, None)]


@pytest.mark.parametrize("sent, reason", [
    (b"", "no PROXY header within 0.5 s"),
    (b"PROXY TCP4 192.0.2.7", "no PROXY header within 0.5 s (got 20 bytes of one)"),
    (b"USER alice\r\n", "not a PROXY protocol header"),
    (b"PROXY TCP4 192.0.2.777 198.51.100.1 1 21\r\n", "is not an IPv4 address"),
    (build_v2(("192.0.2.7", 1)), "a PROXY protocol v2 header where only v1 is accepted"),
])
async def test_a_trusted_peer_without_a_valid_header_is_refused(
    proxied, sent: bytes, reason: str, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="gateway")
    seen = Seen()
    server = await proxied(events=seen, mode="v1", proxy_header_timeout=0.5)
    assert await in_thread(closed_without_greeting, server.server_port, sent) == b""
    assert "control connection from trusted balancer 127.0.0.1:" in caplog.text
    assert reason in caplog.text
    assert seen.sessions == []  # no session, no greeting


async def test_a_balancer_health_check_that_just_connects_is_quiet(proxied, caplog) -> None:
    caplog.set_level(logging.INFO, logger="gateway")
    server = await proxied()
    reader, writer = await asyncio.open_connection(HOST, server.server_port)
    writer.close()
    async with asyncio.timeout(STEP):
        assert await reader.read() == b""
    await asyncio.sleep(0.1)  # the server sees the close
    assert "refused" not in caplog.text


async def test_close_drops_connections_still_sending_their_header(proxied) -> None:
    server = await proxied(proxy_header_timeout=60)
    reader, writer = await asyncio.open_connection(HOST, server.server_port)
    writer.write(b"PROXY TCP4 ")
    await writer.drain()
    await asyncio.sleep(0.05)
    async with asyncio.timeout(STEP):
        await server.close()
        assert await reader.read() == b""
    writer.close()


# ----------------------------------------------------------------------------- passive data connections


async def _control(port: int, header: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(header + b"USER alice\r\nPASS right\r\n")
    for code in ("220", "331", "230"):
        async with asyncio.timeout(STEP):
            line = await reader.readline()
        assert line.startswith(code.encode()), line
    return reader, writer


async def _command(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: str) -> str:
    writer.write(line.encode() + b"\r\n")
    async with asyncio.timeout(STEP):
        return (await reader.readline()).decode()


async def _refused(port: int, data: bytes, source: str | None = None) -> None:
    """A data connection the server closes without sending anything."""
    reader, writer = await asyncio.open_connection(
        HOST, port, local_addr=(source, 0) if source else None
    )
    writer.write(data)
    try:
        async with asyncio.timeout(STEP):
            assert await reader.read() == b""
    except ConnectionResetError:
        pass
    writer.close()


async def test_passive_connection_must_come_from_the_real_client(proxied, root: Path, caplog) -> None:
    """The control connection came through the balancer for CLIENT.  A data connection
    directly from another address, or through the balancer for another client, or
    through it without a header, is refused; CLIENT's own (direct) connection is the
    transfer's."""
    caplog.set_level(logging.INFO, logger="gateway")
    server = await proxied(proxy_header_timeout=1.0)
    (root / "f").write_bytes(b"for the real client only")
    reader, writer = await _control(server.server_port, build_v2((CLIENT, 5000)))
    reply = await _command(reader, writer, "EPSV")
    port = int(re.search(r"\|\|\|(\d+)\|", reply).group(1))  # type: ignore[union-attr]

    await _refused(port, b"", STRANGER)
    await _refused(port, build_v2(("192.0.2.99", 1)))
    await _refused(port, build_v1((STRANGER, 1)))
    await _refused(port, b"garbage that is no header")
    await _refused(port, b"")  # the balancer without a header: refused after the timeout

    data_reader, data_writer = await asyncio.open_connection(HOST, port, local_addr=(CLIENT, 0))
    assert (await _command(reader, writer, "RETR f")).startswith("150")
    async with asyncio.timeout(STEP):
        assert await data_reader.read() == b"for the real client only"
        assert (await reader.readline()).startswith(b"226")
    data_writer.close()
    writer.close()
    text = caplog.text
    assert re.search(rf"refused data connection from {STRANGER}:\d+ \(control peer is {CLIENT}\)", text)
    assert f"refused data connection from 192.0.2.99:1 via balancer {BALANCER}" in text
    assert f"refused data connection from {STRANGER}:1 via balancer {BALANCER}" in text
    assert "data connection from trusted balancer 127.0.0.1:" in text
    assert "not a PROXY protocol header" in text and "no PROXY header within 1 s" in text


async def test_passive_connection_through_the_balancer_with_its_header(proxied, root: Path) -> None:
    server = await proxied()
    (root / "f").write_bytes(b"relayed data")
    reader, writer = await _control(server.server_port, build_v1(("192.0.2.7", 5000)))
    reply = await _command(reader, writer, "PASV")
    numbers = re.search(r"\((\d+,\d+,\d+,\d+,\d+,\d+)\)", reply).group(1).split(",")  # type: ignore[union-attr]
    port = int(numbers[4]) * 256 + int(numbers[5])
    data_reader, data_writer = await asyncio.open_connection(HOST, port)
    data_writer.write(build_v2(("192.0.2.7", 5001)))  # another port, the same client
    assert (await _command(reader, writer, "RETR f")).startswith("150")
    async with asyncio.timeout(STEP):
        assert await data_reader.read() == b"relayed data"
        assert (await reader.readline()).startswith(b"226")
    data_writer.close()
    writer.close()


# ----------------------------------------------------------------------------- TLS


def _pump(sock: socket.socket, tls: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO,
          step: Callable[[], Any]) -> Any:
    """Run ``step`` (a TLS operation) until it completes, moving bytes over ``sock``."""
    while True:
        try:
            result = step()
        except ssl.SSLWantReadError:
            if outgoing.pending:
                sock.sendall(outgoing.read())
            data = sock.recv(65536)
            if not data:
                raise EOFError("the server closed the connection") from None
            incoming.write(data)
            continue
        if outgoing.pending:
            sock.sendall(outgoing.read())
        return result


def implicit_tls_session(port: int, header: bytes, context: ssl.SSLContext) -> list[str]:
    """The header and the TLS ClientHello in one write, then SYST over TLS."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=HOST)
    with socket.create_connection((HOST, port), STEP) as sock:
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        sock.sendall(header + outgoing.read())
        _pump(sock, tls, incoming, outgoing, tls.do_handshake)
        lines = [_pump(sock, tls, incoming, outgoing, lambda: tls.read(4096)).decode()]
        tls.write(b"SYST\r\n")
        sock.sendall(outgoing.read())
        lines.append(_pump(sock, tls, incoming, outgoing, lambda: tls.read(4096)).decode())
        return [line.rstrip("\r\n") for line in lines]


@pytest.mark.parametrize("header", [build_v1(("192.0.2.7", 7)), build_v2(("192.0.2.7", 7))])
async def test_implicit_tls_starts_after_the_header(proxied, server_tls, client_tls, header: bytes) -> None:
    seen = Seen()
    server = await proxied(ssl=server_tls, events=seen)
    lines = await in_thread(implicit_tls_session, server.server_port, header, client_tls)
    assert lines == ["220 welcome", "215 UNIX Type: L8"]
    assert [host for host, *_ in seen.sessions] == ["192.0.2.7"]


async def test_implicit_tls_direct_client_and_untrusted_header(proxied, server_tls, client_tls, caplog) -> None:
    caplog.set_level(logging.INFO, logger="gateway")
    seen = Seen()
    server = await proxied(ssl=server_tls, events=seen)

    def direct() -> list[str]:
        with socket.create_connection((HOST, server.server_port), STEP, source_address=(CLIENT, 0)) as raw:
            with client_tls.wrap_socket(raw, server_hostname=HOST) as sock:
                greeting = sock.recv(4096)
                sock.sendall(b"SYST\r\n")
                return [greeting.decode().rstrip(), sock.recv(4096).decode().rstrip()]

    assert await in_thread(direct) == ["220 welcome", "215 UNIX Type: L8"]
    # an untrusted header goes to the TLS handshake, which fails: closed, logged
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await in_thread(implicit_tls_via, server.server_port, build_v1(("192.0.2.7", 1)), client_tls, STRANGER)
    assert [host for host, *_ in seen.sessions] == [CLIENT]
    assert f"TLS handshake with {STRANGER}:" in caplog.text


def implicit_tls_via(port: int, header: bytes, context: ssl.SSLContext, source: str) -> None:
    with socket.create_connection((HOST, port), STEP, source_address=(source, 0)) as raw:
        raw.sendall(header)
        with context.wrap_socket(raw, server_hostname=HOST) as sock:
            sock.recv(4096)


async def test_explicit_tls_and_protected_data_through_the_balancer(
    proxied, root: Path, server_tls, client_tls
) -> None:
    """AUTH TLS on a relayed control connection; a PROT P data connection sends its
    header, then its TLS handshake."""
    seen = Seen()
    server = await proxied(tls_context=server_tls, events=seen)
    (root / "secret").write_bytes(b"s" * 70_000)
    header = build_v2(("192.0.2.7", 9))

    def session() -> tuple[bytes, bytes]:
        ftp = relayed(server.server_port, header, cls=RelayedFTPTLS, context=client_tls)
        assert isinstance(ftp, ftplib.FTP_TLS)
        try:
            ftp.auth()
            ftp.login("alice", "right")
            ftp.prot_p()
            ftp.storbinary("STOR up", io.BytesIO(b"u" * 50_000))
            return retr_bytes(ftp, "secret"), (root / "up").read_bytes()
        finally:
            ftp.quit()

    downloaded, uploaded = await in_thread(session)
    assert downloaded == b"s" * 70_000 and uploaded == b"u" * 50_000
    assert [host for host, *_ in seen.sessions] == ["192.0.2.7"]


# ----------------------------------------------------------------------------- settings


def test_a_proxy_listener_needs_trusted_balancers() -> None:
    with pytest.raises(ValueError, match="proxy_trusted is empty"):
        Server([], proxy_protocol="v2")
    with pytest.raises(ValueError, match="off, v1, v2 or any"):
        Server([], proxy_protocol="v3", proxy_trusted=["10.0.0.0/8"])
    with pytest.raises(ValueError, match="host bits"):
        Server([], proxy_protocol="v2", proxy_trusted=["10.0.0.1/8"])
    assert Server([]).proxy_policy is None


# ----------------------------------------------------------------------------- uvloop


def test_plain_listener_on_uvloop(root: Path) -> None:
    """What production runs without TLS: uvloop, whose transports start reading right
    after ``connection_made``.  A relayed client (header, then FTP in the same
    segment; data connections with their own header, an upload's bytes right behind
    it) and a direct client both transfer whole files."""
    import uvloop

    (root / "f").write_bytes(b"d" * 300_000)

    async def transfer(port: int, source: str, header: bytes) -> tuple[bytes, int]:
        reader, writer = await asyncio.open_connection(HOST, port, local_addr=(source, 0))
        writer.write(header + b"USER alice\r\nPASS right\r\n")
        for code in (b"220", b"331", b"230"):
            assert (await reader.readline()).startswith(code)

        async def data_connection() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            reply = await _command(reader, writer, "EPSV")
            data_port = int(re.search(r"\|\|\|(\d+)\|", reply).group(1))  # type: ignore[union-attr]
            return await asyncio.open_connection(HOST, data_port, local_addr=(source, 0))

        data_reader, data_writer = await data_connection()
        data_writer.write(header)
        assert (await _command(reader, writer, "RETR f")).startswith("150")
        downloaded = await data_reader.read()
        assert (await reader.readline()).startswith(b"226")
        data_writer.close()
        data_reader, data_writer = await data_connection()
        data_writer.write(header + b"u" * 200_000)
        assert (await _command(reader, writer, "STOR up")).startswith("150")
        data_writer.close()
        assert (await reader.readline()).startswith(b"226")
        writer.close()
        return downloaded, (root / "up").stat().st_size

    async def scenario() -> None:
        seen = Seen()
        server = Server([alice(root)], proxy_protocol="any", proxy_trusted=[BALANCER], events=seen)
        await server.start(HOST, 0)
        try:
            async with asyncio.timeout(STEP):
                for source, header in ((BALANCER, build_v2((CLIENT, 7))), (CLIENT, b""),
                                       (BALANCER, build_v1((CLIENT, 8)))):
                    assert await transfer(server.server_port, source, header) == (b"d" * 300_000, 200_000)
        finally:
            await server.close()
        assert [(host, via) for host, _, _, via in seen.sessions] == [
            (CLIENT, BALANCER), (CLIENT, None), (CLIENT, BALANCER),
        ]

    uvloop.run(scenario())
