"""FTPS: explicit (AUTH TLS) and implicit (``ssl=``), PROT P transfers, policies."""

from __future__ import annotations

import asyncio
import ftplib
import io
import os
import socket
import ssl
from pathlib import Path

import pytest

import gateway

from .conftest import HOST, STEP, client_tls_version, expect_error, in_thread, read_all

VERSIONS = pytest.mark.parametrize(
    "version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls1.2", "tls1.3"]
)


class ImplicitFTP_TLS(ftplib.FTP_TLS):
    """ftplib has no implicit FTPS: wrap the socket before reading the greeting."""

    def connect(
        self, host: str = "", port: int = 0, timeout: float = STEP, source_address=None
    ) -> str:
        self.host, self.port, self.timeout = host, port, timeout
        sock = socket.create_connection((host, port), timeout)
        self.af = sock.family
        self.sock = self.context.wrap_socket(sock, server_hostname=host)
        self.file = self.sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        return self.welcome


def _ftps_roundtrip(ftp: ftplib.FTP_TLS, payload: bytes) -> bytes:
    ftp.prot_p()
    assert ftp.storbinary("STOR blob", io.BytesIO(payload)).startswith("226")
    chunks: list[bytes] = []
    assert ftp.retrbinary("RETR blob", chunks.append).startswith("226")
    lines: list[str] = []
    ftp.retrlines("LIST", lines.append)
    assert any(line.endswith(" blob") for line in lines)
    return b"".join(chunks)


# ----------------------------------------------------------------------------- explicit


@VERSIONS
async def test_explicit_tls_prot_p_with_ftplib(
    make_server, server_tls, ca, root: Path, version
) -> None:
    server = await make_server(tls_context=server_tls)
    payload = os.urandom(2 * 1024 * 1024 + 3)
    context = client_tls_version(ca, version)

    def scenario() -> tuple[bytes, str]:
        ftp = ftplib.FTP_TLS(context=context, timeout=STEP)
        ftp.connect(HOST, server.server_port)
        ftp.auth()
        negotiated = ftp.sock.version()
        ftp.login()
        data = _ftps_roundtrip(ftp, payload)
        ftp.quit()
        return data, negotiated

    data, negotiated = await in_thread(scenario)
    assert data == payload
    assert (
        negotiated
        == {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
    )
    assert (root / "blob").read_bytes() == payload


@VERSIONS
async def test_explicit_tls_with_gateway_client(
    make_server, server_tls, ca, root: Path, version
) -> None:
    server = await make_server(tls_context=server_tls, require_tls_session_reuse=True)
    payload = os.urandom(1024 * 1024 + 5)
    client = gateway.Client(socket_timeout=STEP)
    await client.connect(HOST, server.server_port)
    try:
        await client.upgrade_to_tls(client_tls_version(ca, version))
        await client.login()
        async with client.upload_stream("blob") as stream:
            await stream.write(payload)
        async with client.download_stream("blob") as stream:
            data = b"".join([block async for block in stream.iter_by_block()])
        names = [path.name for path, _ in await client.list()]
        await client.quit()
    finally:
        client.close()
    assert data == payload
    assert names == ["blob"]
    assert (root / "blob").read_bytes() == payload


async def test_commands_pipelined_with_auth_tls_are_not_executed(
    make_server, server_tls, client_tls, root: Path, raw
) -> None:
    (root / "x").write_bytes(b"keep me")
    server = await make_server(tls_context=server_tls)
    client = await raw(server, login=False)
    await client.send(b"USER anonymous\r\n")
    assert (await client.reply()).code == "230"
    await client.send(b"AUTH TLS\r\nDELE x\r\nMKD evil\r\n")
    assert (await client.reply()).code == "234"
    async with asyncio.timeout(STEP):
        await client.writer.start_tls(client_tls, server_hostname=HOST)
    # the next reply answers the next command, not the smuggled ones
    await client.expect("NOOP", "200")
    await client.expect("SIZE x", "213")
    await client.expect("PWD", "257")
    assert (root / "x").read_bytes() == b"keep me"
    assert not (root / "evil").exists()


async def test_auth_tls_forgets_a_half_login(
    make_server, server_tls, client_tls, root: Path, raw
) -> None:
    """USER sent in clear before AUTH must be sent again under TLS (RFC 4217 4)."""
    server = await make_server([gateway.User("u", "p", base_path=root)], tls_context=server_tls)
    client = await raw(server, login=False)
    await client.expect("USER u", "331")
    await client.expect("AUTH TLS", "234")
    async with asyncio.timeout(STEP):
        await client.writer.start_tls(client_tls, server_hostname=HOST)
    await client.expect("PASS p", "503")
    await client.login("u", "p")


async def test_tls_command_errors(make_server, server_tls, client_tls, raw) -> None:
    """strict_rfc: RFC 4217's refusals (the aioftp-mode replies: test_tls_commands_aioftp_mode)."""
    server = await make_server(tls_context=server_tls, strict_rfc=True)
    client = await raw(server, login=False)
    await client.expect("AUTH KERBEROS", "504")
    await client.expect("PBSZ 0", "503")  # before AUTH
    await client.expect("PROT P", "503")
    await client.expect("AUTH TLS", "234")
    async with asyncio.timeout(STEP):
        await client.writer.start_tls(client_tls, server_hostname=HOST)
    await client.expect("AUTH TLS", "503")  # already
    await client.expect("PROT P", "503")  # PBSZ first
    await client.expect("PBSZ x", "501")
    await client.expect("PBSZ 0", "200")
    await client.expect("PROT S", "536")
    await client.expect("PROT Z", "504")
    await client.expect("PROT C", "200")
    await client.expect("PROT P", "200")
    await client.login()
    await client.expect("NOOP", "200")


async def test_tls_commands_aioftp_mode(make_server, server_tls, client_tls, raw, root: Path) -> None:
    """The default (aioftp's replies): PBSZ bare and PROT before PBSZ are accepted, a
    level other than P or C is 502; PROT P still protects the data connection."""
    (root / "f").write_bytes(b"secret")
    server = await make_server(tls_context=server_tls)
    client = await raw(server, login=False)
    await client.expect("AUTH TLS", "234")
    async with asyncio.timeout(STEP):
        await client.writer.start_tls(client_tls, server_hostname=HOST)
    await client.expect("PROT P", "200")  # before PBSZ
    await client.expect("PBSZ", "200")
    await client.expect("PROT S", "502")
    await client.expect("PROT Z", "502")
    await client.login()
    port = await client.pasv()
    await client.expect("RETR f", "150")
    reader, writer = await asyncio.open_connection(HOST, port, ssl=client_tls, server_hostname=HOST)
    assert writer.get_extra_info("ssl_object") is not None
    assert await read_all(reader) == b"secret"
    writer.close()
    assert (await client.reply()).code == "226"


async def test_failed_tls_handshake_closes_only_that_session(make_server, server_tls, raw) -> None:
    server = await make_server(tls_context=server_tls)
    client = await raw(server, login=False)
    await client.expect("AUTH TLS", "234")
    await client.send(b"this is not a TLS ClientHello\r\n" * 4)
    assert await client.at_eof()
    other = await raw(server)
    await other.expect("NOOP", "200")


# ----------------------------------------------------------------------------- policies


async def test_require_tls(make_server, server_tls, client_tls, raw) -> None:
    server = await make_server(tls_context=server_tls, require_tls=True)
    client = await raw(server, login=False)
    await client.expect("USER anonymous", "530")
    await client.expect("PASS x", "530")
    await client.expect("NOOP", "200")  # the session goes on
    await client.expect("AUTH TLS", "234")
    async with asyncio.timeout(STEP):
        await client.writer.start_tls(client_tls, server_hostname=HOST)
    await client.login()
    await client.expect("PBSZ 0", "200")
    await client.expect("PROT C", "534")
    await client.expect("PROT P", "200")


async def test_require_tls_with_ftplib(make_server, server_tls, client_tls, root: Path) -> None:
    server = await make_server(tls_context=server_tls, require_tls=True)
    (root / "f").write_bytes(b"secure")

    def scenario() -> bytes:
        plain = ftplib.FTP(timeout=STEP)
        plain.connect(HOST, server.server_port)
        expect_error("530", plain.login)
        plain.close()
        ftp = ftplib.FTP_TLS(context=client_tls, timeout=STEP)
        ftp.connect(HOST, server.server_port)
        ftp.login()  # AUTH TLS first
        ftp.voidcmd("PBSZ 0")
        expect_error("534", ftp.prot_c)
        ftp.prot_p()
        chunks: list[bytes] = []
        ftp.retrbinary("RETR f", chunks.append)
        ftp.quit()
        return b"".join(chunks)

    assert await in_thread(scenario) == b"secure"


async def test_require_tls_session_reuse_refuses_ftplib(
    make_server, server_tls, client_tls, root: Path
) -> None:
    """ftplib's FTP_TLS does not resume the control session on data connections."""
    server = await make_server(
        tls_context=server_tls, require_tls_session_reuse=True, wait_future_timeout=STEP
    )
    (root / "f").write_bytes(b"data")

    def scenario() -> str:
        ftp = ftplib.FTP_TLS(context=client_tls, timeout=STEP)
        ftp.connect(HOST, server.server_port)
        ftp.login()
        ftp.prot_p()
        try:
            ftp.retrbinary("RETR f", lambda data: None)
        except ftplib.error_perm as exc:
            reply = str(exc)
        except (OSError, ssl.SSLError):
            # the server completed the handshake then hung up: the reply follows
            reply = _next_reply(ftp)
        else:
            raise AssertionError("the data connection was accepted")
        assert ftp.voidcmd("NOOP").startswith("200")  # the session goes on
        ftp.quit()
        return reply

    reply = await in_thread(scenario)
    assert reply.startswith("522"), reply


def _next_reply(ftp: ftplib.FTP) -> str:
    try:
        return ftp.getresp()
    except ftplib.error_perm as exc:
        return str(exc)


async def test_data_tls_refused_when_client_sends_clear_data(
    make_server, server_tls, client_tls, raw, root: Path
) -> None:
    """With PROT P a client that talks clear text on the data connection gets nothing."""
    server = await make_server(tls_context=server_tls, tls_handshake_timeout=STEP)
    client = await raw(server, login=False)
    await client.expect("AUTH TLS", "234")
    async with asyncio.timeout(STEP):
        await client.writer.start_tls(client_tls, server_hostname=HOST)
    await client.login()
    await client.expect("PBSZ 0", "200")
    await client.expect("PROT P", "200")
    reader, writer = await client.open_data()
    await client.expect("STOR clear.txt", "150")
    writer.write(b"not tls at all\r\n" * 100)
    await writer.drain()
    writer.close()
    assert (await client.reply()).code == "425"
    await client.expect("NOOP", "200")
    assert not (root / "clear.txt").exists()


# ----------------------------------------------------------------------------- implicit


@VERSIONS
async def test_implicit_tls_with_ftplib(make_server, server_tls, ca, root: Path, version) -> None:
    server = await make_server(ssl=server_tls)
    payload = os.urandom(512 * 1024 + 1)
    context = client_tls_version(ca, version)

    def scenario() -> bytes:
        ftp = ImplicitFTP_TLS(context=context, timeout=STEP)
        assert ftp.connect(HOST, server.server_port).startswith("220")
        ftp.login()
        data = _ftps_roundtrip(ftp, payload)
        ftp.quit()
        return data

    assert await in_thread(scenario) == payload
    assert (root / "blob").read_bytes() == payload


async def test_implicit_tls_with_gateway_client(
    make_server, server_tls, client_tls, root: Path
) -> None:
    server = await make_server(ssl=server_tls, require_tls=True, require_tls_session_reuse=True)
    payload = os.urandom(300_000)
    client = gateway.Client(ssl=client_tls, socket_timeout=STEP)
    await client.connect(HOST, server.server_port)
    try:
        await client.login()
        async with client.upload_stream("blob") as stream:
            await stream.write(payload)
        async with client.download_stream("blob") as stream:
            data = b"".join([block async for block in stream.iter_by_block()])
        await client.quit()
    finally:
        client.close()
    assert data == payload


async def test_implicit_tls_refuses_clear_text_client(make_server, server_tls, raw) -> None:
    server = await make_server(ssl=server_tls)
    reader, writer = await asyncio.open_connection(HOST, server.server_port)
    writer.write(b"USER anonymous\r\n")
    await writer.drain()
    try:
        data = await read_all(reader)
    except ConnectionError:
        data = b""
    assert not data.startswith(b"2")
    writer.close()
    client = await raw(server, ssl_context=_trusting(server_tls))
    await client.expect("NOOP", "200")


def _trusting(server_context: ssl.SSLContext) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def test_protected_data_connection_from_another_address_is_dropped(
    make_server, server_tls, client_tls, raw, root: Path
) -> None:
    (root / "f").write_bytes(b"protected data")
    server = await make_server(tls_context=server_tls, wait_future_timeout=STEP)
    client = await raw(server, login=False)
    await client.expect("AUTH TLS", "234")
    async with asyncio.timeout(STEP):
        await client.writer.start_tls(client_tls, server_hostname=HOST)
    await client.login()
    await client.expect("PBSZ 0", "200")
    await client.expect("PROT P", "200")
    port = await client.pasv()
    await client.expect("RETR f", "150")
    # a thief on another address, speaking TLS: it never gets the file
    thief = socket.socket()
    thief.bind(("127.0.0.2", 0))
    thief.setblocking(False)
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(STEP):
        await loop.sock_connect(thief, (HOST, port))
    try:
        thief_reader, thief_writer = await asyncio.open_connection(
            sock=thief, ssl=client_tls, server_hostname=HOST
        )
    except (ssl.SSLError, ConnectionError):
        stolen = b""
    else:
        try:
            stolen = await read_all(thief_reader)
        except (ssl.SSLError, ConnectionError):
            stolen = b""
        thief_writer.close()
    assert stolen == b""
    reader, writer = await asyncio.open_connection(HOST, port, ssl=client_tls, server_hostname=HOST)
    assert await read_all(reader) == b"protected data"
    writer.close()
    assert (await client.reply()).code == "226"


async def test_prot_c_after_pasv_under_prot_p(make_server, server_tls, ca, root: Path) -> None:
    """PASV while PROT P, then PROT C: the data connection on the announced port is
    clear text, as the client now expects."""
    (root / "blob").write_bytes(b"in the clear")
    server = await make_server(tls_context=server_tls)
    context = client_tls_version(ca, ssl.TLSVersion.TLSv1_3)

    def scenario() -> bytes:
        ftp = ftplib.FTP_TLS(context=context, timeout=STEP)
        ftp.connect(HOST, server.server_port)
        ftp.auth()
        ftp.login()
        ftp.prot_p()
        host, port = ftplib.parse227(ftp.sendcmd("PASV"))
        assert ftp.sendcmd("PROT C").startswith("200")
        with socket.create_connection((host, port), timeout=STEP) as data:
            assert ftp.sendcmd("RETR blob").startswith("150")
            received = b""
            while chunk := data.recv(65536):
                received += chunk
        assert ftp.voidresp().startswith("226")
        ftp.quit()
        return received

    assert await in_thread(scenario) == b"in the clear"
