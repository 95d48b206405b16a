"""The transport-sensitive scenarios again on uvloop, the loop production runs on.

uvloop's transports differ from asyncio's in the details these tests touch: reading
paused around STARTTLS, urgent data, aborting a transport with data buffered.
"""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path

import uvloop

from .conftest import HOST, STEP, ftp_login, in_thread, read_all, retr_bytes

# The loop comes from ``pytest_asyncio_loop_factories`` in conftest.py.


async def test_runs_on_uvloop() -> None:
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)


async def test_smoke_transfer(server, root: Path) -> None:
    payload = os.urandom(2 * 1024 * 1024 + 7)

    def scenario() -> bytes:
        ftp = ftp_login(server.server_port)
        ftp.storbinary("STOR blob", io.BytesIO(payload))
        data = retr_bytes(ftp, "blob")
        lines: list[str] = []
        ftp.storlines("STOR text", io.BytesIO(b"a\nb\n"))
        ftp.retrlines("RETR text", lines.append)
        assert lines == ["a", "b"]
        ftp.quit()
        return data

    assert await in_thread(scenario) == payload
    assert (root / "blob").read_bytes() == payload


async def test_auth_tls_pipelining(make_server, server_tls, client_tls, root: Path, raw) -> None:
    (root / "x").write_bytes(b"keep")
    server = await make_server(tls_context=server_tls)
    for _ in range(5):
        client = await raw(server, login=False)
        await client.send(b"AUTH TLS\r\nDELE x\r\n")
        assert (await client.reply()).code == "234"
        async with asyncio.timeout(STEP):
            await client.writer.start_tls(client_tls, server_hostname=HOST)
        await client.login()
        await client.expect("SIZE x", "213")
    assert (root / "x").read_bytes() == b"keep"


async def test_explicit_tls_transfer_with_ftplib(make_server, server_tls, client_tls) -> None:
    import ftplib

    server = await make_server(tls_context=server_tls)
    payload = os.urandom(1024 * 1024 + 1)

    def scenario() -> bytes:
        ftp = ftplib.FTP_TLS(context=client_tls, timeout=STEP)
        ftp.connect(HOST, server.server_port)
        ftp.login()
        ftp.prot_p()
        ftp.storbinary("STOR blob", io.BytesIO(payload))
        data = retr_bytes(ftp, "blob")
        ftp.quit()
        return data

    assert await in_thread(scenario) == payload


async def test_ftplib_abort(server, root: Path) -> None:
    (root / "big").write_bytes(os.urandom(32 * 1024 * 1024))

    def scenario() -> None:
        ftp = ftp_login(server.server_port)
        conn = ftp.transfercmd("RETR big")
        assert conn.recv(1024)
        assert ftp.abort().startswith("426")
        assert ftp.voidresp().startswith("226")
        conn.close()
        assert ftp.voidcmd("NOOP").startswith("200")
        ftp.quit()

    await in_thread(scenario)


async def test_abor_and_close_are_prompt_with_buffered_data(server, raw, root: Path) -> None:
    (root / "big").write_bytes(os.urandom(32 * 1024 * 1024))
    client = await raw(server)
    await client.expect("TYPE A", "200")
    reader, writer = await client.open_data()
    await client.expect("RETR big", "150")
    await reader.readexactly(1024)
    loop = asyncio.get_running_loop()
    start = loop.time()
    await client.send("ABOR")
    assert [(await client.reply()).code for _ in range(2)] == ["426", "226"]
    assert loop.time() - start < 5
    writer.close()
    reader, writer = await client.open_data()
    await client.expect("RETR big", "150")
    await reader.readexactly(1024)
    start = loop.time()
    async with asyncio.timeout(STEP):
        await server.close()
    assert loop.time() - start < 3
    writer.close()
    rest = await read_all(client.reader)  # the aborted transfer's replies, then EOF
    assert rest == b"" or rest.endswith(b"421 server shutting down\r\n"), rest
