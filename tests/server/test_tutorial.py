"""The developer tutorial's NOOP and COLL examples, run unchanged on gateway.

The classes below are the tutorial's text with ``import gateway as aioftp``; only the
driver differs (port 0 instead of the fixed 8021, and assertions instead of prints).
"""

from __future__ import annotations

import gateway as aioftp

from .conftest import ftp_login, in_thread

# ----------------------------------------------------------------------------- the tutorial
# fmt: off


class NoopClient(aioftp.Client):
    async def noop(self):
        await self.command("NOOP", "2xx")


class MyClient(aioftp.Client):

    async def collect(self, count):
        collected = []
        async with self.get_stream("COLL " + str(count), "1xx") as stream:
            async for block in stream.iter_by_block(8):
                i = int.from_bytes(block, "big")
                print("received:", block, i)
                collected.append(i)
        return collected


class NoopServer(aioftp.Server):

    async def noop(self, connection, rest):
        connection.response("200", "boring")
        return True


class MyServer(aioftp.Server):

    @aioftp.ConnectionConditions(
        aioftp.ConnectionConditions.login_required,
        aioftp.ConnectionConditions.passive_server_started)
    async def coll(self, connection, rest):

        @aioftp.ConnectionConditions(
            aioftp.ConnectionConditions.data_connection_made,
            wait=True,
            fail_code="425",
            fail_info="Can't open data connection")
        @aioftp.server.worker
        async def coll_worker(self, connection, rest):
            stream = connection.data_connection
            del connection.data_connection
            async with stream:
                for i in range(count):
                    binary = i.to_bytes(8, "big")
                    await stream.write(binary)
            connection.response("200", "coll transfer done")
            return True

        count = int(rest)
        coro = coll_worker(self, connection, rest)
        task = connection.loop.create_task(coro)
        connection.extra_workers.add(task)
        connection.response("150", "coll transfer started")
        return True


# fmt: on
# ----------------------------------------------------------------------------- drivers


async def test_noop_client_and_server(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the default user serves the working directory
    server = NoopServer()
    client = NoopClient()
    await server.start("127.0.0.1", 0)
    try:
        await client.connect("127.0.0.1", server.server_port)
        await client.login()
        await client.noop()
        code, info = await client.command("NOOP", "2xx")
        assert code == "200" and [line.strip() for line in info] == ["boring"]
        await client.quit()
    finally:
        await server.close()


async def test_noop_server_answers_ftplib(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    server = NoopServer()
    await server.start("127.0.0.1", 0)
    try:

        def scenario() -> str:
            ftp = ftp_login(server.server_port)
            try:
                return ftp.voidcmd("NOOP")
            finally:
                ftp.quit()

        assert await in_thread(scenario) == "200 boring"
    finally:
        await server.close()


async def test_coll_client_and_server(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    server = MyServer()
    client = MyClient()
    await server.start("127.0.0.1", 0)
    try:
        await client.connect("127.0.0.1", server.server_port)
        await client.login()
        collected = await client.collect(20)
        assert collected == list(range(20))
        # the control connection is usable after the extension's transfer
        await client.command("NOOP", "200")
        await client.quit()
    finally:
        await server.close()
    assert "received: b'\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x13' 19" in capsys.readouterr().out


async def test_coll_refused_before_login_and_without_pasv(tmp_path, monkeypatch, raw) -> None:
    monkeypatch.chdir(tmp_path)
    server = MyServer()
    await server.start("127.0.0.1", 0)
    try:
        client = await raw(server, login=False)
        await client.expect("COLL 3", "503")  # login_required fails with 503 (aioftp)
        await client.login()
        await client.expect("COLL 3", "503")  # no PASV yet
        await client.expect("NOOP", "200")
    finally:
        await server.close()


async def test_server_methods_are_not_commands(server, raw) -> None:
    """Only command handlers are reachable: ``CLOSE`` or ``START`` are unknown verbs."""
    client = await raw(server)
    for verb in ("CLOSE", "START", "DISPATCHER", "GET_PATHS", "_REFUSAL"):
        reply = await client.cmd(verb)
        assert reply.code in ("500", "502"), (verb, reply)  # unknown, not run
    await client.expect("NOOP", "200")
