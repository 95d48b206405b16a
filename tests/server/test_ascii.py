"""TYPE A converts line ends (LF stored, CRLF on the wire); TYPE I is byte exact."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from .conftest import ftp_login, in_thread, random_bytes, read_all, retr_bytes


async def test_ascii_upload_and_download_with_ftplib(server, root: Path) -> None:
    def scenario() -> list[str]:
        ftp = ftp_login(server.server_port)
        # storlines sends every line with CRLF whatever its local ending
        reply = ftp.storlines("STOR text.txt", io.BytesIO(b"a\nb\r\nc\n\nlast"))
        assert reply.startswith("226")
        lines: list[str] = []
        assert ftp.retrlines("RETR text.txt", lines.append).startswith("226")
        ftp.quit()
        return lines

    lines = await in_thread(scenario)
    assert (root / "text.txt").read_bytes() == b"a\nb\nc\n\nlast\n"
    assert lines == ["a", "b", "c", "", "last"]


@pytest.mark.parametrize("type_", ["A", "A N", "a n"])
async def test_ascii_download_puts_crlf_on_the_wire(server, root: Path, raw, type_: str) -> None:
    (root / "unix.txt").write_bytes(b"x\ny\r\nz\n" * 1000)
    client = await raw(server)
    await client.expect(f"TYPE {type_}", "200")
    reader, writer = await client.open_data()
    await client.expect("RETR unix.txt", "150")
    data = await read_all(reader)
    writer.close()
    assert (await client.reply()).code == "226"
    assert data == b"x\r\ny\r\nz\r\n" * 1000


async def test_ascii_upload_strips_cr_from_crlf_only(server, root: Path, raw) -> None:
    client = await raw(server)
    await client.expect("TYPE A", "200")
    reader, writer = await client.open_data()
    await client.expect("STOR up.txt", "150")
    # CRLF split across writes, a lone CR kept
    for piece in (b"one\r", b"\ntwo\r\n", b"lone\rcr\r\n", b"end\r"):
        writer.write(piece)
        await writer.drain()
    writer.close()
    assert (await client.reply()).code == "226"
    assert (root / "up.txt").read_bytes() == b"one\ntwo\nlone\rcr\nend\r"


async def test_binary_is_byte_exact(server, root: Path) -> None:
    payload = random_bytes(3 * 1024 * 1024 + 17) + b"\r\n\n\r\x00\xff"

    def scenario() -> bytes:
        ftp = ftp_login(server.server_port)
        ftp.voidcmd("TYPE I")
        assert ftp.storbinary("STOR blob", io.BytesIO(payload)).startswith("226")
        data = retr_bytes(ftp, "blob")
        ftp.quit()
        return data

    assert await in_thread(scenario) == payload
    assert (root / "blob").read_bytes() == payload


@pytest.mark.parametrize("type_", ["L 8", "I", "i"])
async def test_type_l8_and_i_are_binary(server, root: Path, raw, type_: str) -> None:
    (root / "f").write_bytes(b"a\nb\n")
    client = await raw(server)
    await client.expect("TYPE A", "200")  # switching back from ASCII
    await client.expect(f"TYPE {type_}", "200")
    reader, writer = await client.open_data()
    await client.expect("RETR f", "150")
    assert await read_all(reader) == b"a\nb\n"
    writer.close()
    assert (await client.reply()).code == "226"
