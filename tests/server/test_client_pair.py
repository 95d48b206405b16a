"""gateway.Client against gateway.Server in one test (aioftp's pair style)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path, PurePosixPath

import pytest

import gateway

from .conftest import Permission, User


async def test_pair_high_level_api(server, client_factory, root: Path, tmp_path: Path) -> None:
    client = await client_factory(server)
    assert await client.get_current_directory() == PurePosixPath("/")
    await client.make_directory("a/b/c")
    assert (root / "a" / "b" / "c").is_dir()
    await client.change_directory("a/b")
    assert await client.get_current_directory() == PurePosixPath("/a/b")
    await client.change_directory()
    assert await client.get_current_directory() == PurePosixPath("/a")
    payload = os.urandom(200_000)
    async with client.upload_stream("/a/f.bin") as stream:
        await stream.write(payload)
    assert (root / "a" / "f.bin").read_bytes() == payload
    info = await client.stat("/a/f.bin")
    assert info["type"] == "file" and info["size"] == str(len(payload))
    assert await client.is_dir("/a/b") and await client.is_file("/a/f.bin")
    assert not await client.exists("/a/missing")
    names = sorted(path.name for path, _ in await client.list("/a"))
    assert names == ["b", "f.bin"]
    recursive = sorted(str(path) for path, _ in await client.list("/", recursive=True))
    assert "/a/b/c" in recursive and "/a/f.bin" in recursive
    await client.rename("/a/f.bin", "/g.bin")
    async with client.download_stream("/g.bin", offset=100) as stream:
        data = b"".join([block async for block in stream.iter_by_block()])
    assert data == payload[100:]
    local = tmp_path / "local"
    local.mkdir()
    await client.download("/g.bin", local / "g.bin", write_into=True)
    assert (local / "g.bin").read_bytes() == payload
    await client.upload(local / "g.bin", "/up.bin", write_into=True)
    assert (root / "up.bin").read_bytes() == payload
    await client.remove("/a")
    await client.remove_file("/g.bin")
    assert sorted(os.listdir(root)) == ["up.bin"]
    await client.quit()


async def test_pair_errors_are_status_code_errors(make_server, client_factory, root: Path) -> None:
    users = [User("ro", "pw", base_path=root, permissions=[Permission("/", writable=False)])]
    server = await make_server(users)
    client = await client_factory(server, login=False)
    with pytest.raises(gateway.StatusCodeError) as caught:
        await client.login("ro", "bad")
    assert caught.value.received_codes[-1] == "530"
    await client.login("ro", "pw")
    with pytest.raises(gateway.StatusCodeError) as caught:
        await client.make_directory("nope", parents=False)
    assert caught.value.received_codes[-1] == "550"
    with pytest.raises(gateway.StatusCodeError) as caught:
        async with client.download_stream("missing") as stream:
            await stream.read()
    assert caught.value.received_codes[-1] == "550"
    await client.command("NOOP", "200")


async def test_pair_abort_download(server, client_factory, root: Path) -> None:
    (root / "big").write_bytes(os.urandom(32 * 1024 * 1024))
    client = await client_factory(server)
    stream = await client.download_stream("big")
    assert len(await stream.read(1024)) > 0
    await client.abort()  # reads 426, then expects 225/226
    stream.close()
    await client.command("NOOP", "200")
    assert (await client.stat("big"))["size"] == str(32 * 1024 * 1024)


async def test_pair_many_sessions_in_parallel(server, client_factory, root: Path) -> None:
    async def one(index: int) -> bytes:
        client = await client_factory(server)
        payload = os.urandom(50_000 + index)
        async with client.upload_stream(f"f{index}") as stream:
            await stream.write(payload)
        async with client.download_stream(f"f{index}") as stream:
            data = b"".join([block async for block in stream.iter_by_block()])
        await client.quit()
        return data == payload

    assert all(await asyncio.gather(*(one(i) for i in range(20))))
    assert len(os.listdir(root)) == 20
