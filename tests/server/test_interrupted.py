"""Interrupted transfers: resets and ABOR leave storage as it was, the session usable."""

from __future__ import annotations

import asyncio
import ftplib
import hashlib
import io
import os
import socket
import time
from pathlib import Path

import pytest

import gateway

from .conftest import ftp_login, in_thread, list_lines, read_all, reset_socket

ORIGINAL = b"original content\n" * 100


def _names(root: Path) -> list[str]:
    return sorted(os.listdir(root))


async def _reset_upload(client, command: str, sent: int = 512 * 1024) -> str:
    reader, writer = await client.open_data()
    await client.expect(command, "150")
    writer.write(os.urandom(sent))
    await writer.drain()
    reset_socket(writer)
    return (await client.reply()).code


@pytest.mark.parametrize("factory", ["PathIO", "AsyncPathIO"])
async def test_reset_stor_over_existing_file_keeps_it(
    make_server, raw, root: Path, factory: str
) -> None:
    (root / "f.bin").write_bytes(ORIGINAL)
    server = await make_server(path_io_factory=getattr(gateway, factory))
    client = await raw(server)
    assert await _reset_upload(client, "STOR f.bin") in ("426", "451")
    assert (root / "f.bin").read_bytes() == ORIGINAL
    assert _names(root) == ["f.bin"]  # no partial file on disk
    reader, writer = await client.open_data()
    await client.expect("LIST", "150")
    listing = (await read_all(reader)).decode()
    writer.close()
    assert (await client.reply()).code == "226"
    assert [line.split()[-1] for line in listing.splitlines()] == ["f.bin"]
    await client.expect("SIZE f.bin", "213")


async def test_reset_stor_of_new_file_leaves_nothing(server, raw, root: Path) -> None:
    client = await raw(server)
    assert await _reset_upload(client, "STOR new.bin") in ("426", "451")
    assert _names(root) == []
    await client.expect("SIZE new.bin", "550")
    await client.expect("NOOP", "200")


async def test_reset_appe_keeps_original(server, raw, root: Path) -> None:
    (root / "log").write_bytes(ORIGINAL)
    client = await raw(server)
    assert await _reset_upload(client, "APPE log") in ("426", "451")
    assert (root / "log").read_bytes() == ORIGINAL
    assert _names(root) == ["log"]


async def test_reset_rest_stor_keeps_original(server, raw, root: Path) -> None:
    (root / "f").write_bytes(ORIGINAL)
    client = await raw(server)
    # resuming at the end (the usual case): the reset leaves the file as it was
    await client.expect(f"REST {len(ORIGINAL)}", "350")
    assert await _reset_upload(client, "STOR f") in ("426", "451")
    assert (root / "f").read_bytes() == ORIGINAL
    # resuming inside: the bytes the failed upload overwrote come back, no byte of
    # it stays, and no undo file is left beside it
    await client.expect("REST 10", "350")
    assert await _reset_upload(client, "STOR f") in ("426", "451")
    assert (root / "f").read_bytes() == ORIGINAL
    assert _names(root) == ["f"]


async def test_reset_stor_to_memory_backend(make_server, raw) -> None:
    server = await make_server([gateway.User(base_path="/")], path_io_factory=gateway.MemoryPathIO)
    client = await raw(server)
    reader, writer = await client.open_data()
    await client.expect("STOR kept", "150")
    writer.write(ORIGINAL)
    writer.close()
    assert (await client.reply()).code == "226"
    assert await _reset_upload(client, "STOR kept") in ("426", "451")
    assert await _reset_upload(client, "STOR gone") in ("426", "451")
    reply = await client.expect("SIZE kept", "213")
    assert reply.text == str(len(ORIGINAL))
    await client.expect("SIZE gone", "550")


# ----------------------------------------------------------------------------- ABOR


def _signalling_path_io(event: asyncio.Event) -> type:
    """PathIO that sets ``event`` once the server has read a block of a file."""

    class SignallingPathIO(gateway.PathIO):
        async def read(self, file, block_size):  # type: ignore[override]
            data = await super().read(file, block_size)
            event.set()
            return data

    return SignallingPathIO


@pytest.mark.parametrize("type_", ["I", "A"])
async def test_abor_during_large_retr(make_server, raw, root: Path, type_: str) -> None:
    """TYPE I goes through sendfile; TYPE A through the transport's buffer, which
    holds most of a 1 MiB block once a client with a small window stops reading."""
    (root / "big").write_bytes(os.urandom(64 * 1024 * 1024))
    block_read = asyncio.Event()
    server = await make_server(path_io_factory=_signalling_path_io(block_read))
    client = await raw(server)
    await client.expect(f"TYPE {type_}", "200")
    port = await client.pasv()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    await client.expect("RETR big", "150")
    await reader.readexactly(1024)  # the transfer is flowing; stop reading
    if type_ == "A":
        async with asyncio.timeout(10):
            await block_read.wait()  # a block went to the data connection's buffer
    loop = asyncio.get_running_loop()
    start = loop.time()
    await client.send("ABOR")
    assert (await client.reply()).code == "426"
    assert (await client.reply()).code == "226"
    assert loop.time() - start < 5
    writer.close()
    await client.expect("NOOP", "200")
    await client.expect("SIZE big", "213")
    # a new transfer works
    reader, writer = await client.open_data()
    await client.expect("NLST", "150")
    assert await read_all(reader) == b"big\r\n"
    writer.close()
    assert (await client.reply()).code == "226"


async def test_abor_during_stor(server, raw, root: Path) -> None:
    (root / "f").write_bytes(ORIGINAL)
    client = await raw(server)
    reader, writer = await client.open_data()
    await client.expect("STOR f", "150")
    writer.write(os.urandom(256 * 1024))
    await writer.drain()
    # the data connection stays open: only ABOR ends this transfer
    await client.send("ABOR")
    assert (await client.reply()).code == "426"
    assert (await client.reply()).code == "226"
    assert (root / "f").read_bytes() == ORIGINAL
    assert _names(root) == ["f"]
    await client.expect("NOOP", "200")
    writer.close()
    reader, writer = await client.open_data()
    await client.expect("STOR f", "150")
    writer.write(b"new")
    writer.close()
    assert (await client.reply()).code == "226"
    assert (root / "f").read_bytes() == b"new"


async def test_abor_with_ftplib_urgent_data(server, root: Path) -> None:
    """ftplib's abort() sends ABOR with MSG_OOB (the urgent byte is the final LF)."""
    (root / "big").write_bytes(os.urandom(64 * 1024 * 1024))

    def scenario() -> None:
        ftp = ftp_login(server.server_port)
        ftp.voidcmd("TYPE I")
        conn = ftp.transfercmd("RETR big")
        assert len(conn.recv(1024)) > 0
        # RFC 959: 426 for the aborted transfer, then 226 for ABOR itself
        assert ftp.abort().startswith("426")
        assert ftp.voidresp().startswith("226")
        conn.close()
        assert ftp.voidcmd("NOOP").startswith("200")
        assert list_lines(ftp, "NLST") == ["big"]
        ftp.quit()

    await in_thread(scenario)


def _abort_with_telnet_synch(ftp: ftplib.FTP) -> None:
    """ABOR the RFC 959 (4.1.3) way: Telnet IP, then the Synch (IAC DM with DM as TCP
    urgent data), then the command; unlike ftplib's abort() this puts Telnet bytes in
    the line and an urgent byte in the middle of it."""
    sock = ftp.sock
    assert sock is not None
    sock.sendall(b"\xff\xf4\xff")  # IAC IP, and the IAC of IAC DM
    sock.send(b"\xf2", socket.MSG_OOB)  # DM, marked urgent
    sock.sendall(b"ABOR\r\n")


def _abort_with_ftplib(ftp: ftplib.FTP) -> None:
    """ftplib's own abort(): the ABOR line sent with MSG_OOB, no Telnet bytes."""
    sock = ftp.sock
    assert sock is not None
    sock.sendall(b"ABOR\r\n", socket.MSG_OOB)


@pytest.mark.parametrize("how", ["telnet-synch", "ftplib-oob"])
@pytest.mark.parametrize("command", ["RETR", "STOR"])
async def test_urgent_abor_stops_a_stalled_transfer(server, root: Path, command: str, how: str) -> None:
    """A transfer that cannot progress (the client stopped reading, or stopped sending
    without closing) ends within seconds of an urgent ABOR with 426 then 226; the file
    is untouched and the next transfer works."""
    (root / "big").write_bytes(os.urandom(32 * 1024 * 1024))
    (root / "f").write_bytes(ORIGINAL)
    abort = _abort_with_telnet_synch if how == "telnet-synch" else _abort_with_ftplib

    def scenario() -> tuple[list[str], float]:
        ftp = ftp_login(server.server_port)
        ftp.voidcmd("TYPE I")
        if command == "RETR":
            conn = ftp.transfercmd("RETR big")
            assert len(conn.recv(1024)) > 0  # flowing; now stop reading
        else:
            conn = ftp.transfercmd("STOR f")
            conn.sendall(os.urandom(256 * 1024))  # then stall with the connection open
        start = time.monotonic()
        abort(ftp)
        replies = [ftp.getmultiline()[:3], ftp.getmultiline()[:3]]
        elapsed = time.monotonic() - start
        conn.close()
        assert ftp.voidcmd("NOOP").startswith("200")
        payload = os.urandom(100_000)
        assert ftp.storbinary("STOR after", io.BytesIO(payload)).startswith("226")
        chunks: list[bytes] = []
        ftp.retrbinary("RETR after", chunks.append)
        assert hashlib.sha256(b"".join(chunks)).digest() == hashlib.sha256(payload).digest()
        ftp.quit()
        return replies, elapsed

    replies, elapsed = await in_thread(scenario)
    assert replies == ["426", "226"]
    assert elapsed < 5, elapsed
    assert (root / "f").read_bytes() == ORIGINAL  # an aborted STOR leaves the old file
    assert _names(root) == ["after", "big", "f"]


async def test_quit_during_transfer_waits_for_it(server, raw, root: Path) -> None:
    (root / "f").write_bytes(ORIGINAL)
    client = await raw(server)
    reader, writer = await client.open_data()
    await client.expect("RETR f", "150")
    await client.send("QUIT")
    assert await read_all(reader) == ORIGINAL
    writer.close()
    assert (await client.reply()).code == "226"
    assert (await client.reply()).code == "221"
    assert await client.at_eof()


async def test_second_transfer_while_one_runs_is_refused(server, raw, root: Path) -> None:
    (root / "big").write_bytes(os.urandom(32 * 1024 * 1024))
    client = await raw(server)
    reader, writer = await client.open_data()
    await client.expect("RETR big", "150")
    await reader.readexactly(1024)
    await client.expect("RETR big", "425")
    await client.send("ABOR")
    assert [(await client.reply()).code for _ in range(2)] == ["426", "226"]
    writer.close()


async def test_ftplib_error_after_reset(server, root: Path) -> None:
    """A real client that gives up mid-upload: the server answers and goes on."""
    (root / "f").write_bytes(ORIGINAL)

    def scenario() -> str:
        ftp = ftp_login(server.server_port)
        conn = ftp.transfercmd("STOR f")
        conn.sendall(b"x" * 100_000)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        conn.close()
        try:
            reply = ftp.voidresp()
        except ftplib.error_temp as exc:
            reply = str(exc)
        assert ftp.voidcmd("NOOP").startswith("200")
        ftp.quit()
        return reply

    reply = await in_thread(scenario)
    assert reply[:3] in ("426", "451"), reply
    assert (root / "f").read_bytes() == ORIGINAL
