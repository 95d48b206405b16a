"""Server life cycle: start, serve_forever, run, close; many clients at once."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import gateway

from .conftest import HOST, STEP, RawClient, User, ftp_login, in_thread, retr_bytes


async def test_start_sets_host_and_port(root: Path) -> None:
    server = gateway.Server([User(base_path=root)])
    assert server.server_port is None
    await server.start(HOST, 0)
    try:
        assert server.server_host == HOST
        assert isinstance(server.server_port, int) and server.server_port > 0
        client = await RawClient.connect(server.server_port)
        await client.close()
    finally:
        await server.close()
    # closed: nobody listens any more
    try:
        socket.create_connection((HOST, server.server_port), timeout=STEP).close()
    except OSError:
        pass
    else:
        raise AssertionError("the port still accepts connections after close()")


async def test_serve_forever(root: Path) -> None:
    (root / "f").write_bytes(b"forever")
    server = gateway.Server([User(base_path=root)])
    await server.start(HOST, 0)
    task = asyncio.create_task(server.serve_forever())
    try:
        assert await in_thread(lambda: retr_bytes(ftp_login(server.server_port), "f")) == b"forever"
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.close()
    assert task.cancelled()


class _StartedServer(gateway.Server):
    """Tells the test when ``run()`` has started listening."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.started = asyncio.Event()

    async def start(self, *args, **kwargs) -> None:
        await super().start(*args, **kwargs)
        self.started.set()


async def test_run_serves_until_cancelled_then_closes(root: Path) -> None:
    server = _StartedServer([User(base_path=root)])
    task = asyncio.create_task(server.run(HOST, 0))
    async with asyncio.timeout(STEP):
        await server.started.wait()
    client = await RawClient.connect(server.server_port)
    await client.login()
    await client.expect("NOOP", "200")
    task.cancel()
    results = await asyncio.gather(task, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    # run() closed the server on the way out: the session was ended
    try:
        reply = await client.reply()
    except (EOFError, ConnectionError):
        pass
    else:
        assert reply.code == "421"
        assert await client.at_eof()
    await client.close()
    assert server.sessions == {}


async def test_close_with_connected_clients_is_prompt(make_server, root: Path) -> None:
    (root / "big").write_bytes(os.urandom(32 * 1024 * 1024))
    server = await make_server()
    idle = [await RawClient.connect(server.server_port) for _ in range(3)]
    for client in idle[1:]:
        await client.login()
    # one client in a stalled download (it never reads), one in a stalled upload
    busy_down = await RawClient.connect(server.server_port)
    await busy_down.login()
    await busy_down.expect("TYPE A", "200")
    down_reader, down_writer = await busy_down.open_data()
    await busy_down.expect("RETR big", "150")
    await down_reader.readexactly(1024)
    busy_up = await RawClient.connect(server.server_port)
    await busy_up.login()
    up_reader, up_writer = await busy_up.open_data()
    await busy_up.expect("STOR partial", "150")
    up_writer.write(b"x" * 100_000)
    await up_writer.drain()

    loop = asyncio.get_running_loop()
    start = loop.time()
    async with asyncio.timeout(STEP):
        await server.close()
    assert loop.time() - start < 3
    for client in [*idle, busy_down, busy_up]:
        try:
            while True:
                reply = await client.reply()
                assert reply.code in ("421", "426", "226", "451"), reply
                if reply.code == "421":
                    break
        except (EOFError, ConnectionError):
            pass
        assert await client.at_eof()
        await client.close()
    down_writer.close()
    up_writer.close()
    assert server.sessions == {}
    assert not (root / "partial").exists()
    assert sorted(os.listdir(root)) == ["big"]


async def test_two_hundred_clients_at_once(server) -> None:
    async def greet() -> bytes:
        reader, writer = await asyncio.open_connection(HOST, server.server_port)
        try:
            return await reader.readline()
        finally:
            writer.close()

    async with asyncio.timeout(30):
        greetings = await asyncio.gather(*(greet() for _ in range(200)))
    assert all(line.startswith(b"220 ") and line.endswith(b"\r\n") for line in greetings)
    client = await RawClient.connect(server.server_port)
    await client.login()
    await client.expect("NOOP", "200")
    await client.close()


async def test_two_hundred_clients_then_quit(server) -> None:
    """Every one logs in and quits; the server ends every session."""

    async def session() -> str:
        client = await RawClient.connect(server.server_port)
        try:
            await client.login()
            return (await client.cmd("QUIT")).code
        finally:
            await client.close()

    async with asyncio.timeout(30):
        codes = await asyncio.gather(*(session() for _ in range(200)))
    assert codes == ["221"] * 200
    async with asyncio.timeout(STEP):
        while server.sessions:
            await asyncio.wait(list(server.sessions))
    assert server.available_connections.value is None  # unlimited server untouched


async def test_connections_per_address_are_limited(root: Path) -> None:
    server = gateway.Server([User(base_path=root)], maximum_connections_per_address=2)
    await server.start(HOST, 0)
    clients = []
    try:
        for _ in range(2):
            clients.append(await RawClient.connect(server.server_port))
        refused = await RawClient.connect(server.server_port, greeting=False)
        reply = await refused.reply()
        assert reply.code == "421" and "address" in reply.text, reply
        await refused.close()
        # a slot given back is a slot free again, once the server has ended that session
        leaving = clients.pop()
        port = leaving.writer.get_extra_info("sockname")[1]
        task = next(t for t, session in server.sessions.items() if session.client_port == port)
        await leaving.close()
        async with asyncio.timeout(STEP):
            await asyncio.wait([task])
        clients.append(await RawClient.connect(server.server_port))
    finally:
        for client in clients:
            await client.close()
        await server.close()
    assert server._per_address == {}


async def test_per_user_throttle_state_goes_with_the_last_session(root: Path) -> None:
    alice = User("alice", "pw", base_path=root, read_speed_limit=10 * 1024 * 1024)
    server = gateway.Server([alice])
    await server.start(HOST, 0)
    try:
        first = await RawClient.connect(server.server_port)
        second = await RawClient.connect(server.server_port)
        for client in (first, second):
            await client.login("alice", "pw")
        assert list(server.throttle_per_user) == [alice]  # one state, shared
        tasks = list(server.sessions)
        for client in (first, second):
            await client.close()
        async with asyncio.timeout(STEP):
            await asyncio.wait(tasks)
        assert server.throttle_per_user == {} and server._throttle_holders == {}
    finally:
        await server.close()
