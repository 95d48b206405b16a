"""Login abuse against static accounts: a password storm, USER lines holding slots."""

from __future__ import annotations

import asyncio
from pathlib import Path

from backends.local import DurablePathIO
from gateway import Server
from gateway.service.build import StaticUserManager
from gateway.users import User
from gateway.users.database.hashing import HashPool, HashSettings, PasswordHashing
from tests.server.conftest import HOST

#: a hash that takes a noticeable time, so a storm keeps the hashing pool busy
SLOW = HashSettings(time_cost=2, memory_cost=16384, parallelism=1)
CHEAP = HashSettings(time_cost=1, memory_cost=8, parallelism=1)


async def test_password_storm_does_not_stall_storage(root: Path, raw) -> None:
    hashing = PasswordHashing(SLOW, pool=HashPool(1, 400))
    alice = User("alice", hashing.hash("pw"), base_path=root)
    manager = StaticUserManager([alice], hashing=hashing)  # no limiter: the storm runs
    server = Server(manager, path_io_factory=DurablePathIO)
    await server.start(HOST, 0)
    try:
        worker = await raw(server, login=False)
        await worker.login("alice", "pw")
        storm = [await raw(server, login=False) for _ in range(150)]
        for n, client in enumerate(storm):
            await client.expect(f"USER ghost{n}", "331")
        for client in storm:
            await client.send("PASS guess")
        async with asyncio.timeout(10):
            # the storm has reached the hashing pool (a count, no event to wait on)
            while hashing.pool.in_flight < 100:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        await worker.expect("TYPE I", "200")
        reader, writer = await worker.open_data()
        await worker.expect("STOR upload.bin", "150")
        writer.write(b"x" * 1024)
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        assert (await worker.reply()).code == "226"
        # the upload (fsync off the loop) finished while password checks still wait
        assert hashing.pool.waiting > 0
        assert (root / "upload.bin").read_bytes() == b"x" * 1024
    finally:
        async with asyncio.timeout(60):
            await server.close()


async def test_user_lines_take_no_slot_and_answer_alike(root: Path, raw) -> None:
    hashing = PasswordHashing(CHEAP)
    alice = User("alice", hashing.hash("pw"), base_path=root, maximum_connections=1)
    server = Server(StaticUserManager([alice], hashing=hashing))
    await server.start(HOST, 0)
    try:
        squatters = [await raw(server, login=False) for _ in range(3)]
        for client in squatters:
            assert (await client.expect("USER alice", "331")).text == "password required"
        unknown = await raw(server, login=False)
        assert (await unknown.expect("USER nobody", "331")).text == "password required"
        real = await raw(server, login=False)
        await real.login("alice", "pw")  # not locked out by the USER lines
        await real.expect("PWD", "257")
        second = await raw(server, login=False)
        await second.expect("USER alice", "331")
        reply = await second.expect("PASS pw", "530")  # the limit holds after the password
        assert "too much connections" in reply.text
        await real.expect("QUIT", "221")
        assert await real.at_eof()
        await second.expect("USER alice", "331")
        await second.expect("PASS pw", "230")
    finally:
        async with asyncio.timeout(10):
            await server.close()
