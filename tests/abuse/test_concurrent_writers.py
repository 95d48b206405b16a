"""Two uploads into one file at once: the second is told the file is busy (450),
so an aborted writer can never roll back over another client's acknowledged bytes;
two STOU at once never get the same name."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

from tests.server.conftest import HOST, STEP, RawClient


async def _data(client: RawClient) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    port = await client.pasv()
    async with asyncio.timeout(STEP):
        return await asyncio.open_connection(HOST, port)


async def test_second_writer_of_a_file_is_told_it_is_busy(make_server, root: Path) -> None:
    (root / "log.txt").write_bytes(b"first line\n")
    server = await make_server()
    a = await RawClient.connect(server.server_port)
    b = await RawClient.connect(server.server_port)
    await a.login()
    await b.login()
    _ra, wa = await _data(a)
    await a.expect("APPE log.txt", "150")  # A's append is open
    await _data(b)
    await b.expect("APPE log.txt", "450")  # B must wait: nothing of B's is at risk
    await b.expect("STOR log.txt", "450")
    # A is aborted: the file is as it was, and B can now append and keep its record
    wa.transport.abort()
    assert (await a.reply()).code in ("426", "451", "226")
    assert (root / "log.txt").read_bytes().startswith(b"first line\n")
    _rb, wb = await _data(b)
    await b.expect("APPE log.txt", "150")
    wb.write(b"B's record\n")
    await wb.drain()
    wb.close()
    assert (await b.reply()).code == "226"
    assert (root / "log.txt").read_bytes().endswith(b"B's record\n")
    await a.close()
    await b.close()


async def test_simultaneous_stou_get_distinct_names(make_server, root: Path) -> None:
    server = await make_server()
    clients = [await RawClient.connect(server.server_port) for _ in range(2)]
    writers = []
    names = []
    for client in clients:
        await client.login()
        _r, w = await _data(client)
        writers.append(w)
        reply = await client.expect("STOU img.jpg", "150")  # both are uploading now
        match = re.fullmatch(r"FILE: (\S+)", reply.text)
        assert match, reply
        names.append(match.group(1))
    assert names[0] != names[1]
    for index, (client, writer) in enumerate(zip(clients, writers, strict=True)):
        writer.write(f"photo {index}".encode())
        writer.close()
        assert (await client.reply()).code == "226"
    assert sorted((root / name).read_bytes() for name in names) == [b"photo 0", b"photo 1"]
    for client in clients:
        await client.close()


async def test_stou_on_two_nodes_sharing_storage_never_loses_an_upload(make_server, root: Path) -> None:
    # two servers on one storage cannot see each other's running uploads, so both
    # offer the free name; the commit takes it exclusively: the later commit fails
    # (550) instead of silently replacing the first one's acknowledged file
    nodes = [await make_server(), await make_server()]
    clients = [await RawClient.connect(node.server_port) for node in nodes]
    writers = []
    for client in clients:
        await client.login()
        _r, w = await _data(client)
        writers.append(w)
        reply = await client.expect("STOU img.jpg", "150")
        assert reply.text == "FILE: img.jpg"
    writers[1].write(b"node 1")
    writers[1].close()
    assert (await clients[1].reply()).code == "226"
    writers[0].write(b"node 0")
    writers[0].close()
    late = await clients[0].reply()
    assert late.code == "550", late
    assert (root / "img.jpg").read_bytes() == b"node 1"
    assert sorted(os.listdir(root)) == ["img.jpg"]  # no temporary left
    for client in clients:
        await client.close()
