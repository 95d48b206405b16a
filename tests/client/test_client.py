"""``Client`` against real servers (pyftpdlib and gateway's own) and a scripted one."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path, PurePosixPath

import pytest

from gateway.client import Client, DataConnectionThrottleStreamIO
from gateway.errors import InvalidCommand, StatusCodeError

from .conftest import (
    PASSWORD,
    READONLY_PASSWORD,
    READONLY_USER,
    USER,
    ScriptedServer,
    ServerInfo,
    Session,
    TLSServerInfo,
    epsv,
    pasv,
    reply,
)

Scripted = Callable[..., Awaitable[ScriptedServer]]


@asynccontextmanager
async def logged_in(
    server: ServerInfo, user: str = USER, password: str = PASSWORD, **kwargs: object
) -> AsyncIterator[Client]:
    async with Client.context(server.host, server.port, user, password, **kwargs) as client:
        yield client


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tree(root: Path) -> dict[str, bytes | None]:
    """Relative path -> content (None for directories), skipping nothing."""
    return {
        p.relative_to(root).as_posix(): (None if p.is_dir() else p.read_bytes())
        for p in sorted(root.rglob("*"))
    }


def make_local_tree(base: Path) -> Path:
    src = base / "src"
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "empty").mkdir()
    (src / "a.txt").write_bytes(b"alpha")
    (src / "sub" / "b file.txt").write_bytes(b"beta" * 1000)
    (src / "sub" / "deeper" / "c.bin").write_bytes(os.urandom(70_000))
    return src


def make_remote_tree(root: Path) -> None:
    (root / "d1" / "d2").mkdir(parents=True)
    (root / "f0").write_bytes(b"zero")
    (root / "d1" / "f1").write_bytes(b"one!")
    (root / "d1" / "d2" / "f 2").write_bytes(b"two")


def kinds(entries: list[tuple[PurePosixPath, dict]]) -> dict[str, str]:
    return {str(path): info["type"] for path, info in entries}


# --- connection and login --------------------------------------------------------


async def test_connect_login_quit(ftp_server: ServerInfo) -> None:
    client = Client()
    greeting = await client.connect(ftp_server.host, ftp_server.port)
    assert isinstance(greeting, list) and greeting
    await client.login(USER, PASSWORD)
    assert await client.get_current_directory() == PurePosixPath("/")
    await client.quit()


async def test_anonymous_login(ftp_server: ServerInfo) -> None:
    async with Client.context(ftp_server.host, ftp_server.port) as client:
        assert await client.get_current_directory() == PurePosixPath("/")


async def test_wrong_password(ftp_server: ServerInfo) -> None:
    with pytest.raises(StatusCodeError) as e:
        async with logged_in(ftp_server, password="wrong"):
            pass
    assert e.value.received_codes[-1].matches("530")


async def test_context_tolerates_dead_connection(ftp_server: ServerInfo) -> None:
    async with logged_in(ftp_server) as client:
        client.close()


async def test_context_propagates_errors(ftp_server: ServerInfo) -> None:
    with pytest.raises(KeyError):
        async with logged_in(ftp_server):
            raise KeyError("boom")


async def test_developer_tutorial_noop_client(ftp_server: ServerInfo) -> None:
    class MyClient(Client):
        async def noop(self) -> None:
            await self.command("NOOP", "2xx")

    async with MyClient.context(ftp_server.host, ftp_server.port, USER, PASSWORD) as client:
        await client.noop()
        code, info = await client.command("NOOP", 200)
        assert code == "200"


async def test_developer_tutorial_get_stream_blocks(ftp_server: ServerInfo) -> None:
    numbers = b"".join(i.to_bytes(8, "big") for i in range(20))
    (ftp_server.root / "numbers").write_bytes(numbers)

    class MyClient(Client):
        async def collect(self) -> list[bytes]:
            collected = []
            async with self.get_stream("RETR numbers", "1xx") as stream:
                async for block in stream.iter_by_block(8):
                    collected.append(block)
            return collected

    async with MyClient.context(ftp_server.host, ftp_server.port, USER, PASSWORD) as client:
        blocks = await client.collect()
        assert all(0 < len(block) <= 8 for block in blocks)
        assert b"".join(blocks) == numbers
        stream = await client.get_stream("RETR numbers", "1xx")
        data = await stream.read()
        await stream.finish()
        assert data == numbers


# --- directories ------------------------------------------------------------------


async def test_directories(ftp_server: ServerInfo) -> None:
    async with logged_in(ftp_server) as client:
        await client.make_directory("a/b c/d")
        assert (ftp_server.root / "a" / "b c" / "d").is_dir()
        await client.make_directory("a/b c")  # exists already: nothing to do
        await client.change_directory("a/b c")
        assert await client.get_current_directory() == PurePosixPath("/a/b c")
        await client.change_directory()
        assert await client.get_current_directory() == PurePosixPath("/a")
        await client.change_directory("/")
        await client.remove_directory("a/b c/d")
        assert not (ftp_server.root / "a" / "b c" / "d").exists()
        with pytest.raises(StatusCodeError):
            await client.change_directory("missing")
        with pytest.raises(StatusCodeError):
            await client.remove_directory("missing")


# --- stat, listing ----------------------------------------------------------------


async def test_stat_and_predicates(ftp_server: ServerInfo) -> None:
    make_remote_tree(ftp_server.root)
    async with logged_in(ftp_server) as client:
        info = await client.stat("f0")
        assert info["type"] == "file"
        assert int(info["size"]) == 4
        assert (await client.stat("/d1"))["type"] == "dir"
        assert await client.is_file("d1/d2/f 2")
        assert not await client.is_file("d1")
        assert await client.is_dir("d1/d2")
        assert await client.exists("d1/f1")
        assert not await client.exists("nope")
        with pytest.raises(StatusCodeError) as e:
            await client.stat("nope")
        assert e.value.received_codes[-1].matches("550")


@pytest.mark.parametrize("raw_command", [None, "MLSD", "LIST"])
async def test_list(ftp_server: ServerInfo, raw_command: str | None) -> None:
    make_remote_tree(ftp_server.root)
    async with logged_in(ftp_server) as client:
        entries = await client.list(raw_command=raw_command)
        assert kinds(entries) == {"d1": "dir", "f0": "file"}
        sizes = {str(p): info.get("size") for p, info in entries}
        assert sizes["f0"] == "4"
        assert kinds(await client.list("d1", raw_command=raw_command)) == {
            "d1/d2": "dir",
            "d1/f1": "file",
        }
        recursive = await client.list(recursive=True, raw_command=raw_command)
        assert kinds(recursive) == {
            "d1": "dir",
            "f0": "file",
            "d1/d2": "dir",
            "d1/f1": "file",
            "d1/d2/f 2": "file",
        }
        streamed = [path async for path, _ in client.list("/d1/d2", raw_command=raw_command)]
        assert streamed == [PurePosixPath("/d1/d2/f 2")]
        # The control connection is in a clean state afterwards.
        assert await client.get_current_directory() == PurePosixPath("/")


async def test_list_errors(ftp_server: ServerInfo) -> None:
    async with logged_in(ftp_server) as client:
        with pytest.raises(ValueError):
            client.list(raw_command="NLST")
        with pytest.raises(StatusCodeError):
            await client.list("missing-dir", raw_command="MLSD")
        assert await client.get_current_directory() == PurePosixPath("/")


# --- files --------------------------------------------------------------------------


async def test_rename_and_remove(ftp_server: ServerInfo) -> None:
    make_remote_tree(ftp_server.root)
    async with logged_in(ftp_server) as client:
        await client.rename("f0", "d1/moved")
        assert (ftp_server.root / "d1" / "moved").read_bytes() == b"zero"
        with pytest.raises(StatusCodeError):
            await client.rename("f0", "again")
        await client.remove_file("d1/moved")
        assert not (ftp_server.root / "d1" / "moved").exists()
        with pytest.raises(StatusCodeError):
            await client.remove_file("d1/moved")
        await client.remove("d1")
        assert list(ftp_server.root.iterdir()) == []
        await client.remove("d1")  # missing: nothing to do


async def test_streams_and_offsets(ftp_server: ServerInfo) -> None:
    async with logged_in(ftp_server) as client:
        async with client.upload_stream("s.txt") as stream:
            assert isinstance(stream, DataConnectionThrottleStreamIO)
            await stream.write(b"hello ")
        async with client.append_stream("s.txt") as stream:
            await stream.write(b"world")
        assert (ftp_server.root / "s.txt").read_bytes() == b"hello world"
        async with client.download_stream("s.txt") as stream:
            assert b"".join([block async for block in stream.iter_by_block()]) == b"hello world"
        async with client.download_stream("s.txt", offset=6) as stream:
            assert await stream.read() == b"world"
        async with client.upload_stream("s.txt", offset=5) as stream:
            await stream.write(b"!!")
        assert (ftp_server.root / "s.txt").read_bytes().startswith(b"hello!!orld")


async def test_big_file_roundtrip_and_rest(ftp_server: ServerInfo, local: Path) -> None:
    data = os.urandom(5 * 2**20 + 123)
    (local / "big.bin").write_bytes(data)
    async with logged_in(ftp_server) as client:
        await client.upload(local / "big.bin", "remote dir/big.bin", write_into=True)
        assert sha256((ftp_server.root / "remote dir" / "big.bin").read_bytes()) == sha256(data)
        await client.download("remote dir/big.bin", local / "copy.bin", write_into=True)
        assert sha256((local / "copy.bin").read_bytes()) == sha256(data)
        await client.download("remote dir/big.bin", local / "into")
        assert sha256((local / "into" / "big.bin").read_bytes()) == sha256(data)
        offset = 3 * 2**20 + 7
        async with client.download_stream("remote dir/big.bin", offset=offset) as stream:
            tail = b"".join([block async for block in stream.iter_by_block(65536)])
        assert sha256(tail) == sha256(data[offset:])


async def test_upload_file_keeps_name(ftp_server: ServerInfo, local: Path) -> None:
    (local / "name with space.txt").write_bytes(b"x")
    async with logged_in(ftp_server) as client:
        await client.upload(local / "name with space.txt", "deep/er")
        await client.upload(local / "name with space.txt")
    assert (ftp_server.root / "deep" / "er" / "name with space.txt").read_bytes() == b"x"
    assert (ftp_server.root / "name with space.txt").read_bytes() == b"x"


async def test_upload_and_download_trees(ftp_server: ServerInfo, local: Path) -> None:
    src = make_local_tree(local)
    expected = tree(src)
    root = ftp_server.root
    async with logged_in(ftp_server) as client:
        await client.upload(src)
        assert tree(root / "src") == expected
        await client.upload(src, "parent")
        assert tree(root / "parent" / "src") == expected
        await client.upload(src, "into", write_into=True)
        assert tree(root / "into") == expected
        await client.upload(src, "into", write_into=True)  # again, over itself
        assert tree(root / "into") == expected

        await client.download("src", local / "down")
        assert tree(local / "down" / "src") == expected
        await client.download("/into", local / "down-into", write_into=True)
        assert tree(local / "down-into") == expected


async def test_failures(ftp_server: ServerInfo, local: Path) -> None:
    (local / "f").write_bytes(b"data")
    async with logged_in(ftp_server) as client:
        with pytest.raises(StatusCodeError) as e:
            await client.download("missing", local / "x", write_into=True)
        assert e.value.received_codes[-1].matches("550")
        assert not (local / "x").exists()
        with pytest.raises(StatusCodeError):
            async with client.download_stream("missing"):
                pass
        with pytest.raises(FileNotFoundError):
            await client.upload(local / "missing")
        assert await client.get_current_directory() == PurePosixPath("/")
    (ftp_server.root / "ro-file").write_bytes(b"keep")
    async with logged_in(ftp_server, READONLY_USER, READONLY_PASSWORD) as client:
        with pytest.raises(StatusCodeError) as e:
            await client.upload(local / "f", "f", write_into=True)
        assert e.value.received_codes[-1].matches("5xx")
        with pytest.raises(StatusCodeError):
            await client.remove_file("ro-file")
        with pytest.raises(StatusCodeError):
            await client.command("MKD nope", "257")
        await client.download("ro-file", local / "ro-copy", write_into=True)
    assert (local / "ro-copy").read_bytes() == b"keep"
    assert (ftp_server.root / "ro-file").read_bytes() == b"keep"


async def test_abort(ftp_server: ServerInfo) -> None:
    async with logged_in(ftp_server) as client:
        await client.abort()  # nothing to abort
        stream = await client.upload_stream("aborted")
        await stream.write(b"x" * 100_000)
        await client.abort()
        stream.close()
        assert await client.get_current_directory() == PurePosixPath("/")
        async with client.upload_stream("after") as stream:
            await stream.write(b"ok")
    assert (ftp_server.root / "after").read_bytes() == b"ok"


async def test_passive_commands_pasv_only(ftp_server: ServerInfo) -> None:
    (ftp_server.root / "f").write_bytes(b"pasv")
    async with logged_in(ftp_server, passive_commands=("pasv",)) as client:
        async with client.download_stream("f") as stream:
            assert await stream.read() == b"pasv"
        reader, writer = await client.get_passive_connection("I", commands=["epsv"])
        writer.close()


async def test_throttled_client(ftp_server: ServerInfo) -> None:
    (ftp_server.root / "f").write_bytes(b"t" * 10_000)
    async with logged_in(
        ftp_server, read_speed_limit=10**9, write_speed_limit=10**9, socket_timeout=30
    ) as client:
        async with client.download_stream("f") as stream:
            assert len(await stream.read()) == 10_000


async def test_through_socks_proxy(ftp_server: ServerInfo) -> None:
    from siosocks.io.asyncio import socks_server_handler

    (ftp_server.root / "f").write_bytes(b"proxied")
    proxied: list[object] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        proxied.append(writer)
        await socks_server_handler(reader, writer, allowed_versions={5})

    proxy = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        socks_port = proxy.sockets[0].getsockname()[1]
        async with logged_in(
            ftp_server, socks_host="127.0.0.1", socks_port=socks_port, socks_version=5
        ) as client:
            async with client.download_stream("f") as stream:
                assert await stream.read() == b"proxied"
            assert kinds(await client.list()) == {"f": "file"}
        assert len(proxied) == 3  # control connection and both data connections
    finally:
        proxy.close()


# --- TLS ----------------------------------------------------------------------------


async def test_tls(tls_server: TLSServerInfo, local: Path) -> None:
    if tls_server.implicit:
        options: dict[str, object] = {"ssl": tls_server.client_context}
    else:
        options = {"upgrade_to_tls": tls_server.client_context}
    async with logged_in(tls_server, **options) as client:
        assert client.stream is not None
        assert client.stream.writer.get_extra_info("ssl_object") is not None
        (local / "secret").write_bytes(b"s" * 50_000)
        await client.upload(local / "secret")
        assert (tls_server.root / "secret").read_bytes() == b"s" * 50_000
        assert kinds(await client.list()) == {"secret": "file"}
        stream = await client.download_stream("secret")
        assert stream.writer.get_extra_info("ssl_object") is not None
        assert len(await stream.read()) == 50_000
        await stream.finish()
        with pytest.raises(RuntimeError):
            await client.upgrade_to_tls(tls_server.client_context)


async def test_tls_default_context_made_at_call_time(
    tls_server: TLSServerInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a context the client asks ``ssl.create_default_context()`` when it
    needs one, through the module (reachable as ``gateway.client.ssl``, where
    aioftp code patches it), for implicit and explicit TLS alike."""
    import gateway.client

    assert gateway.client.ssl is ssl
    made: list[tuple[object, ...]] = []

    def trusting(*args: object) -> ssl.SSLContext:
        made.append(args)
        assert tls_server.client_context is not None
        return tls_server.client_context

    monkeypatch.setattr(gateway.client.ssl, "create_default_context", trusting)
    options: dict[str, object] = (
        {"ssl": True} if tls_server.implicit else {"upgrade_to_tls": True}
    )
    async with logged_in(tls_server, **options) as client:
        assert client.stream is not None
        assert client.stream.writer.get_extra_info("ssl_object") is not None
        assert kinds(await client.list()) == {}
    assert made == [()]


async def test_upgrade_to_tls_commands_and_handshake(
    scripted: Scripted, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exactly AUTH TLS, the handshake on the control stream, PBSZ 0, PROT P."""
    server = await scripted(
        {"AUTH": reply("234 go"), "PBSZ": reply("200 ok"), "PROT": reply("200 ok")}
    )
    sentinel = object()
    monkeypatch.setattr(ssl, "create_default_context", lambda: sentinel)
    handshakes: list[dict[str, object]] = []

    async def fake_start_tls(**kwargs: object) -> None:
        handshakes.append(kwargs)

    client = Client()
    await client.connect("127.0.0.1", server.port)
    assert client.stream is not None
    monkeypatch.setattr(client.stream, "start_tls", fake_start_tls)
    await client.upgrade_to_tls()
    assert handshakes == [{"sslcontext": sentinel, "server_hostname": "127.0.0.1"}]
    assert server.received == ["AUTH TLS", "PBSZ 0", "PROT P"]
    mine = object()
    client._data_ssl = None  # as if the first upgrade had not happened
    await client.upgrade_to_tls(mine)  # type: ignore[arg-type]
    assert handshakes[-1] == {"sslcontext": mine, "server_hostname": "127.0.0.1"}
    client.close()


# --- odd replies, from a scripted server -------------------------------------------


async def test_command_with_line_break_is_not_sent(scripted: Scripted) -> None:
    """A CR or LF would make one command two on the wire (an argument smuggling a
    DELE): the client refuses it before writing anything."""
    server = await scripted({"NOOP": reply("200 ok")})
    async with Client.context("127.0.0.1", server.port) as client:
        for command in ("LIST\r\nfoo", "RETR a\nDELE b", "STOR x\r"):
            with pytest.raises(InvalidCommand):
                await client.command(command, "2xx")
        assert await client.command("NOOP", "2xx") == ("200", [" ok"])
    assert server.received == ["USER anonymous", "NOOP", "QUIT"]


async def test_reply_interrupted_by_another_code_is_an_error(scripted: Scripted) -> None:
    """"221-" then "220 ": the reply never ends as RFC 959 says it must; the client
    reports the intruding code instead of waiting for "221 " forever."""
    server = await scripted(greeting=("221-hello", "220 hello"))
    client = Client()
    async with asyncio.timeout(5):
        with pytest.raises(StatusCodeError) as e:
            await client.connect("127.0.0.1", server.port)
    assert e.value.received_codes == ("220",)
    assert e.value.expected_codes == ("221",)
    client.close()


def test_list_info_names_are_public() -> None:
    import gateway
    import gateway.client

    for name in ("BasicListInfo", "ListInfo", "UnixListInfo"):
        assert name in gateway.__all__ and name in gateway.client.__all__
        assert getattr(gateway, name) is getattr(gateway.client, name)
    info: gateway.UnixListInfo = {"type": "file", "unix.mode": 0o644, "link_dst": "t"}
    assert info["unix.mode"] == 0o644


async def test_greeting_after_120_multiline(scripted: Scripted) -> None:
    server = await scripted(greeting=("120 wait", "220-hello", " more", "220 ready"))
    client = Client()
    assert await client.connect("127.0.0.1", server.port) == ["-hello", " more", " ready"]
    client.close()


async def test_login_with_account_and_censored_password(
    scripted: Scripted, caplog: pytest.LogCaptureFixture
) -> None:
    server = await scripted(
        {"USER": reply("331 pass"), "PASS": reply("332 acct"), "ACCT": reply("230 in")}
    )
    caplog.set_level(logging.DEBUG, logger="gateway.client")
    async with Client.context("127.0.0.1", server.port, "u", "secret", "acc"):
        pass
    assert server.received[:3] == ["USER u", "PASS secret", "ACCT acc"]
    assert "secret" not in caplog.text
    assert "PASS ******" in caplog.text


async def test_login_unexpected_33x(scripted: Scripted) -> None:
    server = await scripted({"USER": reply("333 what")})
    with pytest.raises(StatusCodeError):
        async with Client.context("127.0.0.1", server.port):
            pass


async def test_wait_codes_and_multiline(scripted: Scripted) -> None:
    server = await scripted(
        {"FOO": reply("150 wait", "151-still", " waiting", "151 more", "250-done", "250 ok")}
    )
    async with Client.context("127.0.0.1", server.port) as client:
        code, info = await client.command("FOO", "2xx", "1xx")
        assert (code, info) == ("250", ["-done", " ok"])
        assert await client.command("NOOP") is None
        code, _ = await client.parse_response()
        assert code == "502"
        with pytest.raises(StatusCodeError) as e:
            await client.command("BAR", ("200", 250))
        assert e.value.received_codes == ("502",)


async def test_epsv_refused_falls_back_and_remembers(scripted: Scripted) -> None:
    async def retr(session: Session, _: str) -> None:
        await session.send_data(b"payload")

    server = await scripted({"EPSV": reply("500 no"), "PASV": pasv, "RETR": retr})
    async with Client.context("127.0.0.1", server.port) as client:
        for _ in range(2):
            async with client.download_stream("x") as stream:
                assert await stream.read() == b"payload"
    assert [c for c in server.received if c in ("EPSV", "PASV")] == ["EPSV", "PASV", "PASV"]


async def test_epsv_other_failure_is_raised(scripted: Scripted) -> None:
    server = await scripted({"EPSV": reply("421 go away"), "PASV": pasv})
    async with Client.context("127.0.0.1", server.port) as client:
        with pytest.raises(StatusCodeError):
            await client.get_passive_connection()


async def test_epsv_used_and_pasv_unspecified_address(scripted: Scripted) -> None:
    async def retr(session: Session, _: str) -> None:
        await session.send_data(b"e")

    async def pasv_zero(session: Session, arg: str) -> None:
        await pasv(session, arg, address="0,0,0,0")

    server = await scripted({"EPSV": epsv, "PASV": pasv_zero, "RETR": retr})
    async with Client.context("127.0.0.1", server.port) as client:
        async with client.download_stream("x") as stream:
            assert await stream.read() == b"e"
    async with Client.context("127.0.0.1", server.port, passive_commands=["PASV"]) as client:
        async with client.download_stream("x") as stream:
            assert await stream.read() == b"e"


async def test_bad_pasv_reply(scripted: Scripted) -> None:
    server = await scripted({"PASV": reply("227 nothing here")})
    async with Client.context("127.0.0.1", server.port, passive_commands=("pasv",)) as client:
        with pytest.raises(ValueError):
            await client.get_passive_connection()


async def test_mlsd_unknown_falls_back_to_list_and_stat(scripted: Scripted) -> None:
    listing = (
        b"total 2\r\n"
        b"drwxr-xr-x 2 o g 4096 Jan  1  2020 .\r\n"
        b"drwxr-xr-x 2 o g 4096 Jan  1  2020 ..\r\n"
        b"-rw-r--r-- 1 o g 12 Jan  1  2020 file name\r\n"
        b"11/11/2023  03:15 PM    <DIR>          .\r\n"
        b"11/11/2023  03:15 PM    <DIR>          ..\r\n"
        b"11/11/2023  03:15 PM    <DIR>          win dir\r\n"
        b"\r\n"
    )

    async def list_(session: Session, _: str) -> None:
        await session.send_data(listing)

    server = await scripted(
        {"EPSV": epsv, "MLSD": reply("502 no"), "MLST": reply("500 no"), "LIST": list_}
    )
    async with Client.context("127.0.0.1", server.port) as client:
        assert kinds(await client.list("dir")) == {"dir/file name": "file", "dir/win dir": "dir"}
        info = await client.stat("dir/file name")
        assert info["size"] == "12"
        assert await client.is_dir("dir/win dir")
        assert not await client.exists("dir/missing")
        with pytest.raises(StatusCodeError):
            await client.list("dir", raw_command="MLSD")
    assert "MLSD dir" in server.received and "LIST dir" in server.received


async def test_make_directory_parents(scripted: Scripted) -> None:
    server = await scripted({"MLST": reply("550 no"), "MKD": reply('257 "x" made')})
    async with Client.context("127.0.0.1", server.port) as client:
        await client.make_directory("x/y", parents=False)
        await client.make_directory("/p/q")
    made = [c for c in server.received if c.startswith("MKD")]
    assert made == ["MKD x/y", "MKD /p", "MKD /p/q"]


async def test_server_hangs_up(scripted: Scripted) -> None:
    async def hang_up(session: Session, _: str) -> None:
        session.writer.close()

    server = await scripted({"BYE": hang_up})
    client = Client()
    await client.connect("127.0.0.1", server.port)
    with pytest.raises(ConnectionResetError):
        await client.command("BYE", "2xx")
    client.close()


async def test_developer_tutorial_coll(tmp_path: Path) -> None:
    """The tutorial's COLL pair, server side subclassed from gateway's Server."""
    import gateway as aioftp

    class MyServer(aioftp.Server):
        @aioftp.ConnectionConditions(
            aioftp.ConnectionConditions.login_required,
            aioftp.ConnectionConditions.passive_server_started,
        )
        async def coll(self, connection, rest):  # type: ignore[no-untyped-def]
            @aioftp.ConnectionConditions(
                aioftp.ConnectionConditions.data_connection_made,
                wait=True,
                fail_code="425",
                fail_info="Can't open data connection",
            )
            @aioftp.server.worker
            async def coll_worker(self, connection, rest):  # type: ignore[no-untyped-def]
                stream = connection.data_connection
                del connection.data_connection
                async with stream:
                    for i in range(count):
                        await stream.write(i.to_bytes(8, "big"))
                connection.response("200", "coll transfer done")
                return True

            count = int(rest)
            task = connection.loop.create_task(coll_worker(self, connection, rest))
            connection.extra_workers.add(task)
            connection.response("150", "coll transfer started")
            return True

    class MyClient(Client):
        async def collect(self, count: int) -> bytes:
            collected = []
            async with self.get_stream("COLL " + str(count), "1xx") as stream:
                async for block in stream.iter_by_block(8):
                    collected.append(block)
            return b"".join(collected)

    server = MyServer([aioftp.User(base_path=tmp_path)])
    await server.start("127.0.0.1", 0)
    try:
        client = MyClient()
        await client.connect("127.0.0.1", server.server_port)
        await client.login()
        data = await client.collect(20)
        assert [int.from_bytes(data[i : i + 8], "big") for i in range(0, 160, 8)] == list(range(20))
        await client.quit()
    finally:
        await server.close()


# --- active mode (EPRT/PORT), against both servers -----------------------------------


@pytest.mark.parametrize("commands", [("eprt", "port"), ("port",)], ids=["eprt", "port"])
async def test_active_mode_transfers(ftp_server: ServerInfo, local: Path, commands: tuple[str, ...]) -> None:
    src = make_local_tree(local)
    payload = os.urandom(400_003)
    (local / "big.bin").write_bytes(payload)
    async with logged_in(ftp_server, passive=False, active_commands=commands) as client:
        await client.upload(local / "big.bin", "big.bin", write_into=True)
        await client.upload(src, "tree", write_into=True)
        async with client.download_stream("big.bin", offset=123) as stream:
            tail = await stream.read()
        await client.download("tree", local / "back", write_into=True)
        listed = kinds(await client.list("tree", recursive=True))
    assert sha256((ftp_server.root / "big.bin").read_bytes()) == sha256(payload)
    assert tail == payload[123:]
    assert tree(local / "back") == tree(src)
    assert listed["tree/sub/deeper/c.bin"] == "file"


async def test_active_mode_over_tls(tls_server: TLSServerInfo, local: Path) -> None:
    if tls_server.implicit:
        options: dict[str, object] = {"ssl": tls_server.client_context}
    else:
        options = {"upgrade_to_tls": tls_server.client_context}
    payload = os.urandom(200_001)
    (local / "secret").write_bytes(payload)
    async with logged_in(tls_server, passive=False, **options) as client:
        await client.upload(local / "secret")
        stream = await client.download_stream("secret")
        assert stream.writer.get_extra_info("ssl_object") is not None
        data = await stream.read()
        await stream.finish()
    assert sha256(data) == sha256(payload)
    assert sha256((tls_server.root / "secret").read_bytes()) == sha256(payload)
