"""aioftp's behaviour where code written for it depends on it, in our own words.

Each test pins one thing aioftp's published suite checks, so a change that breaks
``import gateway as aioftp`` code fails here first (docs/aioftp-compatibility.md).
"""

from __future__ import annotations

import asyncio
import datetime
import socket
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import gateway
from gateway import Server, User

from .conftest import HOST, STEP, RawClient


async def test_default_user_on_memory_storage_serves_its_relative_root() -> None:
    """aioftp's User() serves Path("."); on memory storage that is the tree's root."""
    server = Server([User()], path_io_factory=gateway.MemoryPathIO)
    await server.start(HOST, 0)
    try:
        client = gateway.Client()
        await client.connect(HOST, server.server_port)
        await client.login()
        await client.make_directory("docs/inner")
        async with client.upload_stream("docs/a.txt") as stream:
            await stream.write(b"hello")
        async with client.download_stream("docs/a.txt") as stream:
            assert await stream.read() == b"hello"
        names = sorted(str(path) for path, _info in await client.list("docs"))
        assert names == ["docs/a.txt", "docs/inner"]
        await client.change_directory("docs/inner")
        await client.change_directory("../../..")  # never above the root
        assert await client.get_current_directory() == PurePosixPath("/")
        await client.quit()
    finally:
        await server.close()


async def test_server_attributes_aioftp_code_reads(make_server, root: Path) -> None:
    server = await make_server()
    assert server.address == (HOST, server.server_port)
    assert server.available_data_ports is None  # no data_ports: any port
    ports = [_free_port(), _free_port()]
    pooled = await make_server(data_ports=ports)
    assert pooled.available_data_ports is not None
    assert pooled.available_data_ports.qsize() == 2
    client = await RawClient.connect(pooled.server_port)
    await client.login()
    await client.expect("PASV", "227")
    assert pooled.available_data_ports.qsize() == 1  # the listener holds one
    await client.expect("QUIT", "221")
    await client.close()
    empty = await make_server(data_ports=[])
    client = await RawClient.connect(empty.server_port)
    await client.login()
    await client.expect("EPSV", "421")  # an empty range: no passive port at all (aioftp's 421)
    await client.expect("NOOP", "200")  # the session goes on


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


async def test_static_helpers() -> None:
    now = datetime.datetime(2002, 1, 1, tzinfo=datetime.UTC).timestamp()
    past = datetime.datetime(2001, 1, 1, tzinfo=datetime.UTC).timestamp()
    assert Server.build_list_mtime(now, now) == "Jan  1 00:00"
    assert Server.build_list_mtime(past, now) == "Jan  1  2001"
    # get_paths is static and works on aioftp's Connection
    user = User()
    user.base_path = PureWindowsPath("C:\\ftp")
    connection = gateway.Connection(current_directory=PurePosixPath("/"), user=user)
    real, virtual = Server.get_paths(connection, PurePosixPath("/foo/C:\\windows"))
    assert real == PureWindowsPath("C:/ftp/foo/C:/windows")  # a name, not a drive
    assert real.is_relative_to(PureWindowsPath("C:\\ftp"))
    assert virtual == PurePosixPath("/foo/C:\\windows")


async def test_passive_replies_say_created_then_exists(server, raw) -> None:
    client = await raw(server)
    assert "created" in (await client.expect("PASV", "227")).text
    assert "exists" in (await client.expect("PASV", "227")).text
    assert "exists" in (await client.expect("EPSV", "229")).text


async def test_a_second_connection_to_a_passive_port_is_turned_away(server, raw, root: Path) -> None:
    client = await raw(server)
    port = await client.pasv()
    async with asyncio.timeout(STEP):
        first = await asyncio.open_connection(HOST, port)
        second_reader, second_writer = await asyncio.open_connection(HOST, port)
        assert await second_reader.read() == b""  # closed at once, not queued
    second_writer.close()
    first[1].close()


async def test_acct_sequence_of_a_subclass(make_server, raw) -> None:
    """A subclass driving its own USER/PASS/ACCT replies is not second-guessed by the
    command table (aioftp's ``test_long_login_sequence_fail``)."""

    class AccountServer(Server):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.commands_mapping["acct"] = self.acct

        async def user(self, connection, rest) -> bool:
            connection.response("331", "password")
            return True

        async def pass_(self, connection, rest) -> bool:
            connection.response("332", "account needed")
            return True

        async def acct(self, connection, rest) -> bool:
            connection.response("333", "no")
            return True

    server = await make_server(cls=AccountServer)
    client = await raw(server, login=False)
    await client.expect("USER x", "331")
    await client.expect("PASS y", "332")
    await client.expect("ACCT z", "333")


async def test_a_handler_exception_ends_the_session(make_server, raw) -> None:
    class Broken(Server):
        async def custom(self, connection, rest) -> bool:
            raise RuntimeError("bug")

    server = await make_server(cls=Broken)
    client = await raw(server)
    await client.send("CUSTOM")
    assert await client.at_eof()
    other = await raw(server)  # the server itself goes on
    await other.expect("NOOP", "200")


async def test_ipv6_control_connection_refuses_pasv(make_server, root: Path) -> None:
    server = Server([User(base_path=root)])
    await server.start("::1", 0)
    try:
        async with asyncio.timeout(STEP):
            reader, writer = await asyncio.open_connection("::1", server.server_port)
        client = RawClient(reader, writer)
        assert (await client.reply()).code == "220"
        await client.login()
        await client.expect("PASV", "503")
        await client.expect("EPSV", "229")
        await client.close()
    finally:
        await server.close()


# ------------------------------------------- replies chosen by strict_rfc (aioftp's by default)


async def test_pbsz_prot_on_a_clear_connection_as_aioftp(make_server, raw, root: Path) -> None:
    """aioftp answers 200 to PBSZ (even bare) and PROT P, 502 to other levels; the
    replies never claim protection, and data connections stay clear."""
    (root / "f").write_bytes(b"plain bytes")
    server = await make_server()
    assert server.strict_rfc is False
    client = await raw(server)
    await client.expect("PBSZ", "200")
    await client.expect("PBSZ 0", "200")
    reply = await client.expect("PROT P", "200")
    assert "clear" in reply.text  # what the data connections really are
    await client.expect("PROT foo", "502")
    await client.expect("PROT S", "502")
    await client.expect("PROT P", "200")
    [session] = server.sessions.values()
    assert session.data_protection == "C"
    reader, writer = await client.open_data()
    await client.expect("RETR f", "150")
    async with asyncio.timeout(STEP):
        assert await reader.read() == b"plain bytes"  # no TLS on the data connection
    writer.close()
    assert (await client.reply()).code == "226"
    await client.expect("PROT C", "200")


async def test_prot_p_without_auth_tls_leaves_data_clear_on_an_ftps_server(
    make_server, server_tls, raw, root: Path
) -> None:
    """TLS configured but never started: PROT P is accepted (aioftp's reply) and the
    data connection is still clear, so nothing pretends to be protected."""
    (root / "f").write_bytes(b"still clear")
    server = await make_server(tls_context=server_tls)
    client = await raw(server)
    await client.expect("PBSZ 0", "200")
    await client.expect("PROT P", "200")
    reader, writer = await client.open_data()
    await client.expect("RETR f", "150")
    async with asyncio.timeout(STEP):
        assert await reader.read() == b"still clear"
    writer.close()
    assert (await client.reply()).code == "226"


async def test_pbsz_prot_on_a_clear_connection_strict(make_server, raw) -> None:
    server = await make_server(strict_rfc=True)
    client = await raw(server)
    await client.expect("PBSZ", "501")
    await client.expect("PBSZ 0", "503")
    await client.expect("PROT P", "503")
    await client.expect("PROT foo", "503")
    await client.expect("NOOP", "200")


def _bind(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    sock.listen()
    return sock


async def test_no_free_passive_port_is_421_and_the_session_goes_on(make_server, raw) -> None:
    port = _free_port()
    server = await make_server(data_ports=[port])
    first = await raw(server)
    second = await raw(server)
    await first.expect("PASV", "227")
    for verb in ("PASV", "EPSV"):
        await second.expect(verb, "421")  # the only port is the first session's
    await second.expect("NOOP", "200")
    await first.expect("QUIT", "221")
    assert await first.at_eof()  # its session closed, and gave its port back
    await second.expect("EPSV", "229")


async def test_only_passive_port_busy_elsewhere(make_server, raw) -> None:
    """The port is held by another program: 421 as aioftp, 425 under strict_rfc."""
    for strict, code in ((False, "421"), (True, "425")):
        port = _free_port()
        server = await make_server(data_ports=[port], strict_rfc=strict)
        client = await raw(server)
        with _bind(port):
            await client.expect("EPSV", code)
            await client.expect("PASV", code)
        await client.expect("NOOP", "200")
        await client.expect("EPSV", "229")  # free again


def test_the_service_answers_as_the_rfcs_unless_configured(tmp_path: Path) -> None:
    """``gateway serve`` builds its servers with strict_rfc ([server] strict_rfc,
    true unless set false); the library's default stays aioftp's."""
    from gateway.config.loader import load_settings
    from gateway.server.events import ServerEvents
    from gateway.service.build import build_servers
    from gateway.users import MemoryUserManager

    def built(settings: Any) -> list[bool]:
        servers = build_servers(settings, MemoryUserManager(()), ServerEvents())
        return [server.strict_rfc for server, _listener in servers]

    assert built(load_settings(env={})) == [True]
    assert built(load_settings(env={"GATEWAY_SERVER_STRICT_RFC": "false"})) == [False]
    config = tmp_path / "gateway.toml"
    config.write_text("[server]\nstrict_rfc = false\n")
    assert built(load_settings(config, env={})) == [False]
    assert Server().strict_rfc is False

