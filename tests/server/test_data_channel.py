"""The data channel's promises: protection when TLS is required, listeners that give
their port back, one connection per PASV, patient TLS handshakes, stall timeouts."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from pathlib import Path

import pytest

from gateway import Server

from .conftest import HOST, STEP, RawClient


async def _tls_login(server: Server, client_tls: ssl.SSLContext, raw) -> RawClient:
    client = await raw(server, login=False)
    await client.expect("AUTH TLS", "234")
    async with asyncio.timeout(STEP):
        await client.writer.start_tls(client_tls, server_hostname=HOST)
    await client.login()
    return client


# ----------------------------------------------------------------------------- require_tls


@pytest.mark.parametrize(
    "command", ["RETR f", "STOR new.txt", "APPE f", "STOU", "LIST", "NLST", "MLSD"]
)
async def test_required_tls_refuses_clear_data_without_prot(
    make_server, server_tls, client_tls, raw, root: Path, command: str
) -> None:
    """AUTH TLS but no PBSZ/PROT P: every data command gets 521, nothing moves."""
    (root / "f").write_bytes(b"secret")
    server = await make_server(tls_context=server_tls, require_tls=True)
    client = await _tls_login(server, client_tls, raw)
    await client.pasv()
    reply = await client.expect(command, "521")
    assert "PROT P" in reply.text
    await client.expect("NOOP", "200")
    assert not (root / "new.txt").exists()
    assert (root / "f").read_bytes() == b"secret"
    # with PROT P the same session transfers
    await client.expect("PBSZ 0", "200")
    await client.expect("PROT P", "200")
    port = await client.pasv()
    reply = await client.expect("SIZE f", "213")
    assert reply.text == "6"
    assert port


async def test_clear_data_allowed_without_require_tls(make_server, server_tls, client_tls, raw, root: Path) -> None:
    (root / "f").write_bytes(b"open")
    server = await make_server(tls_context=server_tls)
    client = await _tls_login(server, client_tls, raw)
    port = await client.pasv()
    async with asyncio.timeout(STEP):
        reader, writer = await asyncio.open_connection(HOST, port)
    await client.expect("RETR f", "150")
    async with asyncio.timeout(STEP):
        assert await reader.read() == b"open"
    writer.close()
    assert (await client.reply()).code == "226"


# ----------------------------------------------------------------------------- listeners


def _pasv_port(text: str) -> int:
    numbers = text[text.index("(") + 1 : text.index(")")].split(",")
    return int(numbers[4]) * 256 + int(numbers[5])


def _free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


async def test_idle_passive_listeners_do_not_exhaust_the_pool(make_server, raw, root: Path) -> None:
    """Sessions that sent PASV and went quiet hold their ports only until the listen
    timeout; under strict_rfc a full pool answers 425 (421 would mean the server is
    closing)."""
    (root / "f").write_bytes(b"x")
    ports = _free_ports(2)
    server = await make_server(data_ports=ports, passive_listen_timeout=0.5, strict_rfc=True)
    idle = [await raw(server) for _ in ports]
    for client in idle:
        await client.expect("PASV", "227")
    latecomer = await raw(server)
    await latecomer.expect("PASV", "425")
    await latecomer.expect("NOOP", "200")  # the session goes on
    # the idle sessions' listeners close by themselves
    for session in list(server.sessions.values()):
        listener = session.passive_server
        if listener is not None:
            async with asyncio.timeout(STEP):
                await listener.wait_closed()
    reply = await latecomer.expect("PASV", "227")
    assert _pasv_port(reply.text) in ports


async def test_port_goes_back_to_the_pool_after_the_transfer(make_server, raw, root: Path) -> None:
    (root / "f").write_bytes(b"payload")
    [port] = _free_ports(1)
    server = await make_server(data_ports=[port], strict_rfc=True)
    first = await raw(server)
    second = await raw(server)
    data_port = await first.pasv()
    await second.expect("PASV", "425")  # the only port is in use
    async with asyncio.timeout(STEP):
        reader, writer = await asyncio.open_connection(HOST, data_port)
    await first.expect("RETR f", "150")
    async with asyncio.timeout(STEP):
        assert await reader.read() == b"payload"
    writer.close()
    assert (await first.reply()).code == "226"
    reply = await second.expect("PASV", "227")  # free again, with the first still logged in
    assert _pasv_port(reply.text) == port


async def test_one_connection_per_pasv(make_server, raw, root: Path) -> None:
    """After the client's data connection arrived, the port accepts nobody else: a
    connection made later cannot be queued for the next transfer (port theft)."""
    (root / "f").write_bytes(b"first")
    server = await make_server()
    client = await raw(server)
    port = await client.pasv()
    async with asyncio.timeout(STEP):
        reader, writer = await asyncio.open_connection(HOST, port)
    await client.expect("RETR f", "150")
    async with asyncio.timeout(STEP):
        assert await reader.read() == b"first"
    writer.close()
    assert (await client.reply()).code == "226"
    with pytest.raises(ConnectionRefusedError):
        async with asyncio.timeout(STEP):
            await asyncio.open_connection(HOST, port)
    # and the next transfer needs a new PASV
    await client.expect("RETR f", "503")


async def test_unused_accepted_connection_is_dropped_with_the_listener(make_server, raw, root: Path) -> None:
    server = await make_server(passive_listen_timeout=0.3)
    client = await raw(server)
    port = await client.pasv()
    async with asyncio.timeout(STEP):
        reader, writer = await asyncio.open_connection(HOST, port)
        # nothing asked for it: the server closes it when the listener expires
        assert await reader.read() == b""
    writer.close()
    await client.expect("LIST", "503")  # no data channel any more


# ----------------------------------------------------------------------------- TLS handshake


async def test_slow_data_tls_handshake_is_waited_for(make_server, server_tls, client_tls, raw, root: Path) -> None:
    """A PROT P data connection whose handshake starts 1.2 s late (a slow link, a
    loaded client) still works: the handshake has its own timeout."""
    payload = os.urandom(100_000)
    (root / "f").write_bytes(payload)
    server = await make_server(tls_context=server_tls, wait_future_timeout=1.0)
    assert server.data_tls_handshake_timeout >= 15
    client = await _tls_login(server, client_tls, raw)
    await client.expect("PBSZ 0", "200")
    await client.expect("PROT P", "200")
    port = await client.pasv()
    sock = socket.create_connection((HOST, port), timeout=STEP)
    await client.expect("RETR f", "150")
    await asyncio.sleep(1.2)  # the scenario: the client is slow to start TLS

    def handshake_and_read() -> bytes:
        with client_tls.wrap_socket(sock, server_hostname=HOST) as tls:
            chunks = []
            while data := tls.recv(65536):
                chunks.append(data)
            return b"".join(chunks)

    async with asyncio.timeout(STEP):
        assert await asyncio.to_thread(handshake_and_read) == payload
    assert (await client.reply()).code == "226"


async def test_data_tls_handshake_timeout_is_a_setting(make_server, server_tls, client_tls, raw) -> None:
    server = await make_server(tls_context=server_tls, data_tls_handshake_timeout=0.3)
    client = await _tls_login(server, client_tls, raw)
    await client.expect("PBSZ 0", "200")
    await client.expect("PROT P", "200")
    port = await client.pasv()
    sock = socket.create_connection((HOST, port), timeout=STEP)
    try:
        await client.expect("LIST", "150")
        # never starts TLS: refused after the handshake timeout, not after STEP
        async with asyncio.timeout(STEP):
            assert (await client.reply()).code == "425"
    finally:
        sock.close()


# ----------------------------------------------------------------------------- stalls


def test_data_timeout_is_on_by_default() -> None:
    server = Server()
    assert server.data_timeout is not None and server.data_timeout <= 600
    from gateway.__main__ import build_parser

    args = build_parser().parse_args([])
    assert args.data_timeout == server.data_timeout


async def test_download_to_a_peer_that_never_reads_times_out(make_server, raw, root: Path) -> None:
    (root / "big").write_bytes(os.urandom(64 * 1024 * 1024))
    server = await make_server(data_timeout=0.5)
    client = await raw(server)
    reader, writer = await client.open_data()
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reader._transport.pause_reading()  # type: ignore[attr-defined]  # a peer that stops reading
    await client.expect("RETR big", "150")
    async with asyncio.timeout(STEP):
        reply = await client.reply()
    assert reply.code == "426"
    await client.expect("NOOP", "200")
    writer.close()


async def test_upload_from_a_peer_that_never_sends_times_out(make_server, raw, root: Path) -> None:
    server = await make_server(data_timeout=0.5)
    client = await raw(server)
    _reader, writer = await client.open_data()
    await client.expect("STOR stalled.bin", "150")
    writer.write(b"some bytes, then nothing")
    async with asyncio.timeout(STEP):
        reply = await client.reply()
    assert reply.code == "426"
    assert not (root / "stalled.bin").exists()
    writer.close()
