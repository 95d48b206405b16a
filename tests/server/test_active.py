"""Active mode (PORT/EPRT) on the server, with ftplib and gateway.Client, and its
bounce protection (RFC 2577): refused addresses never see a connection attempt."""

from __future__ import annotations

import asyncio
import ftplib
import hashlib
import io
import os
import ssl
from pathlib import Path

import gateway

from .conftest import (
    HOST,
    STEP,
    User,
    client_tls_version,
    ftp_login,
    in_thread,
    list_lines,
    reset_socket,
    retr_bytes,
)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Listener:
    """A TCP listener that records who connected (to prove nobody did)."""

    def __init__(self) -> None:
        self.accepted: list[tuple[str, int]] = []  # local addresses connected to
        self.received = bytearray()
        self.done = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def start(self, host: str) -> int:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepted.append(writer.get_extra_info("sockname")[:2])  # the address reached
            self.received += await reader.read()
            writer.close()
            self.done.set()

        self.server = await asyncio.start_server(handle, host, 0)
        return self.server.sockets[0].getsockname()[1]

    def close(self) -> None:
        assert self.server is not None
        self.server.close()


def port_arg(host: str, port: int) -> str:
    return ",".join(host.split(".")) + f",{port >> 8},{port & 255}"


async def test_ftplib_active_transfers(server, root: Path) -> None:
    payload = os.urandom(1024 * 1024 + 7)
    (root / "sub").mkdir()

    def scenario() -> tuple[bytes, list[str], list[str]]:
        ftp = ftp_login(server.server_port)
        ftp.set_pasv(False)
        ftp.storbinary("STOR sub/up.bin", io.BytesIO(payload))
        data = retr_bytes(ftp, "sub/up.bin")
        listing = list_lines(ftp, "LIST sub")
        names = ftp.nlst("sub")
        ftp.quit()
        return data, listing, names

    data, listing, names = await in_thread(scenario)
    assert sha256(data) == sha256(payload)
    assert sha256((root / "sub" / "up.bin").read_bytes()) == sha256(payload)
    assert listing[0].endswith(" up.bin") and str(len(payload)) in listing[0]
    assert [n.rpartition("/")[2] for n in names] == ["up.bin"]


async def test_ftplib_tls_active_transfers(make_server, server_tls, ca, root: Path) -> None:
    server = await make_server(tls_context=server_tls)
    payload = os.urandom(512 * 1024 + 1)
    context = client_tls_version(ca, ssl.TLSVersion.TLSv1_3)

    def scenario() -> bytes:
        ftp = ftplib.FTP_TLS(context=context, timeout=STEP)
        ftp.connect(HOST, server.server_port)
        ftp.auth()
        ftp.login()
        ftp.prot_p()
        ftp.set_pasv(False)
        ftp.storbinary("STOR tls.bin", io.BytesIO(payload))
        data = retr_bytes(ftp, "tls.bin")
        ftp.quit()
        return data

    data = await in_thread(scenario)
    assert sha256(data) == sha256(payload)
    assert sha256((root / "tls.bin").read_bytes()) == sha256(payload)


async def test_gateway_client_active_mode(make_server, root: Path, tmp_path: Path) -> None:
    server = await make_server()
    payload = os.urandom(700_001)
    local = tmp_path / "local.bin"
    local.write_bytes(payload)
    client = gateway.Client(socket_timeout=STEP, passive=False)
    await client.connect(HOST, server.server_port)
    try:
        await client.login()
        await client.upload(local, "up.bin", write_into=True)
        async with client.download_stream("up.bin", offset=1000) as stream:
            tail = b"".join([block async for block in stream.iter_by_block()])
        names = [path.name for path, _ in await client.list()]
        await client.download("up.bin", tmp_path / "down.bin", write_into=True)
        await client.quit()
    finally:
        client.close()
    assert tail == payload[1000:]
    assert names == ["up.bin"]
    assert sha256((root / "up.bin").read_bytes()) == sha256(payload)
    assert sha256((tmp_path / "down.bin").read_bytes()) == sha256(payload)


async def test_gateway_client_active_mode_over_tls(make_server, server_tls, ca, root: Path) -> None:
    server = await make_server(tls_context=server_tls, require_tls_session_reuse=True)
    payload = os.urandom(300_000)
    client = gateway.Client(socket_timeout=STEP, passive=False, active_commands=("port",))
    await client.connect(HOST, server.server_port)
    try:
        await client.upgrade_to_tls(client_tls_version(ca, ssl.TLSVersion.TLSv1_2))
        await client.login()
        async with client.upload_stream("blob") as stream:
            await stream.write(payload)
        async with client.download_stream("blob") as stream:
            data = b"".join([block async for block in stream.iter_by_block()])
        await client.quit()
    finally:
        client.close()
    assert data == payload
    assert (root / "blob").read_bytes() == payload


async def test_bounce_attempts_are_refused_without_connecting(server, raw, root: Path) -> None:
    (root / "f.txt").write_bytes(b"secret")
    other = Listener()
    other_port = await other.start("127.0.0.2")  # another loopback address: "another host"
    low = Listener()
    try:
        client = await raw(server)
        await client.expect(f"PORT {port_arg('127.0.0.2', other_port)}", "501")
        await client.expect("RETR f.txt", "503")  # nothing was set up
        await client.expect(f"EPRT |1|127.0.0.2|{other_port}|", "501")
        await client.expect("RETR f.txt", "503")
        await client.expect("PORT 127,0,0,1,0,21", "501")  # privileged port
        await client.expect("EPRT |1|127.0.0.1|80|", "501")
        await client.expect(f"EPRT |2|::1|{other_port}|", "522")  # IPv6 on an IPv4 session
        await client.expect("EPRT |3|x|5000|", "522")  # unknown network protocol
        for bad in ("PORT 1,2,3", "PORT 127,0,0,1,300,1", "PORT a,b,c,d,e,f", "PORT 127,0,0,1,0,0",
                    "EPRT |1|127.0.0.1|99999|", "EPRT 1|127.0.0.1|5000|", "EPRT |1|not-an-ip|5000|"):
            await client.expect(bad, "501")
        await client.expect("PORT", "501")
        await client.expect("NOOP", "200")  # the session goes on
        assert other.accepted == []
        assert low.accepted == []
    finally:
        other.close()


async def test_port_and_eprt_need_login_and_respect_epsv_all(server, raw) -> None:
    client = await raw(server, login=False)
    await client.expect("PORT 127,0,0,1,200,1", "503")  # not logged in (aioftp's 503)
    await client.expect("EPRT |1|127.0.0.1|5000|", "503")
    await client.login()
    await client.expect("EPSV ALL", "200")
    await client.expect("PORT 127,0,0,1,200,1", "503")
    await client.expect("EPRT |1|127.0.0.1|5000|", "503")
    await client.expect("EPSV", "229")


async def test_active_transfer_to_a_raw_listener(server, raw, root: Path) -> None:
    payload = os.urandom(100_000)
    (root / "f.bin").write_bytes(payload)
    listener = Listener()
    port = await listener.start(HOST)
    try:
        client = await raw(server)
        await client.expect(f"EPRT |1|{HOST}|{port}|", "200")
        await client.expect("RETR f.bin", "150")
        assert (await client.reply()).code == "226"
        async with asyncio.timeout(STEP):
            await listener.done.wait()
        assert bytes(listener.received) == payload
        assert listener.accepted[0][0] == HOST
        # the address is used once: the next transfer needs a new PORT/EPRT/PASV
        await client.expect("RETR f.bin", "503")
        # PASV after PORT: passive again
        await client.expect(f"PORT {port_arg(HOST, port)}", "200")
        reader, writer = await client.open_data()
        await client.expect("RETR f.bin", "150")
        async with asyncio.timeout(STEP):
            assert await reader.read() == payload
        writer.close()
        assert (await client.reply()).code == "226"
        assert len(listener.accepted) == 1  # PORT was replaced, not used
    finally:
        listener.close()


async def test_unreachable_active_address_gives_425(server, raw, root: Path) -> None:
    (root / "f.bin").write_bytes(b"x")
    listener = Listener()
    port = await listener.start(HOST)
    listener.close()  # nobody listens there any more
    await listener.server.wait_closed()  # type: ignore[union-attr]
    client = await raw(server)
    await client.expect(f"PORT {port_arg(HOST, port)}", "200")
    await client.expect("RETR f.bin", "150")
    assert (await client.reply()).code == "425"
    await client.expect("NOOP", "200")
    reader, writer = await client.open_data()
    await client.expect("RETR f.bin", "150")
    async with asyncio.timeout(STEP):
        assert await reader.read() == b"x"
    writer.close()
    assert (await client.reply()).code == "226"


async def test_fxp_allowed_for_trusted_user(make_server, root: Path, raw) -> None:
    (root / "f.bin").write_bytes(b"site to site")
    server = await make_server(
        [User("trusted", "pw", base_path=root), User("other", "pw", base_path=root)],
        allow_fxp=["trusted"],
    )
    listener = Listener()
    port = await listener.start("127.0.0.2")
    try:
        other = await raw(server, login=False)
        await other.login("other", "pw")
        await other.expect(f"PORT {port_arg('127.0.0.2', port)}", "501")
        trusted = await raw(server, login=False)
        await trusted.login("trusted", "pw")
        await trusted.expect(f"PORT {port_arg('127.0.0.2', port)}", "200")
        await trusted.expect("RETR f.bin", "150")
        assert (await trusted.reply()).code == "226"
        async with asyncio.timeout(STEP):
            await listener.done.wait()
        assert bytes(listener.received) == b"site to site"
        assert listener.accepted[0][0] == "127.0.0.2"
    finally:
        listener.close()


async def test_abor_and_dropped_connection_in_active_mode(server, raw, root: Path) -> None:
    """ABOR of an active RETR whose reader stopped reading: 426 then 226 promptly;
    a client that drops the data connection mid-upload leaves the session usable."""
    (root / "big").write_bytes(os.urandom(32 * 1024 * 1024))
    first_bytes = asyncio.Event()
    second = asyncio.Event()
    connections: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def stalled(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append((reader, writer))
        if len(connections) == 2:
            second.set()
            return
        await reader.readexactly(1024)
        first_bytes.set()  # then stop reading

    listener = await asyncio.start_server(stalled, HOST, 0, limit=4096)
    port = listener.sockets[0].getsockname()[1]
    try:
        client = await raw(server)
        await client.expect(f"EPRT |1|{HOST}|{port}|", "200")
        await client.expect("RETR big", "150")
        async with asyncio.timeout(STEP):
            await first_bytes.wait()
        loop = asyncio.get_running_loop()
        start = loop.time()
        await client.send("ABOR")
        assert (await client.reply()).code == "426"
        assert (await client.reply()).code == "226"
        assert loop.time() - start < 5
        await client.expect("NOOP", "200")
        # an upload whose client resets the data connection half way
        await client.expect(f"EPRT |1|{HOST}|{port}|", "200")
        await client.expect("STOR partial", "150")
        async with asyncio.timeout(STEP):
            await second.wait()
        _, writer = connections[1]
        writer.write(b"x" * 100_000)
        await writer.drain()
        reset_socket(writer)
        code = (await client.reply()).code
        assert code in ("226", "426"), code
        if code == "426":
            assert not (root / "partial").exists()  # no torn file is left behind
        await client.expect("NOOP", "200")
        await client.expect("SIZE big", "213")
    finally:
        listener.close()
