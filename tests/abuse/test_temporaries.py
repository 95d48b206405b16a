"""An upload's temporary file is never seen nor touched by clients: not listed, not
readable, not removable, not renamable, while the upload runs."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from tests.server.conftest import HOST, STEP, RawClient


async def _listing(client: RawClient, command: str) -> str:
    port = await client.pasv()
    async with asyncio.timeout(STEP):
        reader, writer = await asyncio.open_connection(HOST, port)
    await client.expect(command, "150")
    async with asyncio.timeout(STEP):
        text = (await reader.read()).decode()
    writer.close()
    assert (await client.reply()).code == "226"
    return text


async def test_upload_temporaries_are_invisible_and_untouchable(make_server, root: Path) -> None:
    server = await make_server()
    uploader = await RawClient.connect(server.server_port)
    other = await RawClient.connect(server.server_port)
    await uploader.login()
    await other.login()
    port = await uploader.pasv()
    async with asyncio.timeout(STEP):
        _reader, writer = await asyncio.open_connection(HOST, port)
    await uploader.expect("STOR report.pdf", "150")
    writer.write(b"x" * 100_000)
    await writer.drain()
    # the temporary exists on disk while the upload runs (made before the 150)...
    [temporary] = [n for n in os.listdir(root) if "partial" in n]
    # ...and no command can see or address it
    for command in ("LIST -a", "NLST -a", "MLSD"):
        assert temporary not in await _listing(other, command)
    await other.expect(f"SIZE {temporary}", "550")
    await other.expect(f"MDTM {temporary}", "550")
    await other.expect(f"DELE {temporary}", "550")
    await other.expect(f"RNFR {temporary}", "550")
    await other.expect(f"MLST {temporary}", "550")
    await other.pasv()
    await other.expect(f"RETR {temporary}", "550")
    writer.close()
    assert (await uploader.reply()).code == "226"
    assert sorted(os.listdir(root)) == ["report.pdf"]
    await uploader.close()
    await other.close()
