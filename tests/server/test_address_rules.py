"""Client networks, per account (after PASS) and server-wide (before the greeting).

Real sessions with ftplib: a second IPv4 client address is 127.0.0.2 (the client
socket is bound to it), IPv6 is ::1, and an IPv4 client reaching a dual-stack socket
arrives as ``::ffff:127.0.0.x``.
"""

from __future__ import annotations

import asyncio
import ftplib
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from gateway import Server, User
from gateway.users import MemoryUserManager
from gateway.users.database.limiter import LimiterSettings, LoginLimiter

from .conftest import STEP, in_thread, list_lines

OTHER = "127.0.0.2"  # a second IPv4 client address, on the loopback network


@pytest.fixture
async def start(root: Path) -> AsyncIterator[Callable[..., Any]]:
    """``await start(users, hosts=[...], **options)``: a server listening on each host."""
    servers: list[Server] = []

    async def make(users: Any, *, hosts: Any = ("127.0.0.1",), **options: Any) -> Server:
        server = Server(users, **options)
        if isinstance(hosts, socket.socket):
            await server.start(None, None, sock=hosts)
        else:
            await server.start(list(hosts), 0)
        servers.append(server)
        return server

    yield make
    for server in servers:
        async with asyncio.timeout(STEP):
            await server.close()


def port_of(server: Server, family: socket.AddressFamily) -> int:
    """The port of the server's socket of ``family`` (each listening socket has its own)."""
    assert server.server is not None
    for sock in server.server.sockets:
        if sock.family == family:
            return int(sock.getsockname()[1])
    raise AssertionError(f"the server does not listen on {family!r}")


def connect(host: str, port: int, source: str | None = None) -> ftplib.FTP:
    ftp = ftplib.FTP(timeout=STEP, source_address=(source, 0) if source else None)
    ftp.connect(host, port)
    return ftp


def login_reply(host: str, port: int, user: str, password: str, source: str | None = None) -> str:
    """The last reply of a login: "230 ..." when it worked, the error text otherwise."""
    ftp = connect(host, port, source)
    try:
        return ftp.login(user, password)
    except ftplib.error_perm as exc:
        return str(exc)
    finally:
        ftp.close()


def timed_login_reply(*args: Any) -> tuple[str, float]:
    started = time.monotonic()
    reply = login_reply(*args)
    return reply, time.monotonic() - started


def alice(root: Path, **policy: Any) -> User:
    return User("alice", "right", base_path=root, **policy)


# -------------------------------------------------------------------------- per account


async def test_allowed_networks_ipv4(start, root: Path) -> None:
    server = await start([alice(root, allow_from=["127.0.0.1/32"])])
    port = server.server_port
    assert (await in_thread(login_reply, "127.0.0.1", port, "alice", "right")).startswith("230")
    refused = await in_thread(login_reply, "127.0.0.1", port, "alice", "right", OTHER)
    wrong = await in_thread(login_reply, "127.0.0.1", port, "alice", "wrong")
    # the refused address's right password reads exactly like a wrong password
    assert refused == wrong == "530 wrong password"


async def test_denied_network_wins_over_an_allowed_one(start, root: Path) -> None:
    server = await start([alice(root, allow_from=["127.0.0.0/8"], deny_from=[OTHER])])
    port = server.server_port
    assert (await in_thread(login_reply, "127.0.0.1", port, "alice", "right")).startswith("230")
    assert await in_thread(login_reply, "127.0.0.1", port, "alice", "right", OTHER) == (
        "530 wrong password"
    )


async def test_ipv6_client_and_ipv4_client_of_one_server(start, root: Path) -> None:
    (root / "a.txt").write_bytes(b"a")
    server = await start(
        [alice(root, deny_from=["::1"]), User("bob", "pw", base_path=root, allow_from=["::1/128"])],
        hosts=["127.0.0.1", "::1"],
    )
    v4, v6 = port_of(server, socket.AF_INET), port_of(server, socket.AF_INET6)
    assert (await in_thread(login_reply, "127.0.0.1", v4, "alice", "right")).startswith("230")
    assert await in_thread(login_reply, "::1", v6, "alice", "right") == "530 wrong password"
    assert await in_thread(login_reply, "127.0.0.1", v4, "bob", "pw") == "530 wrong password"

    def bob_over_ipv6() -> list[str]:
        ftp = connect("::1", v6)
        try:
            ftp.login("bob", "pw")
            return list_lines(ftp, "NLST")  # a data connection over IPv6 (EPSV) too
        finally:
            ftp.close()

    assert await in_thread(bob_over_ipv6) == ["a.txt"]


async def test_ipv4_mapped_clients_on_a_dual_stack_listener(start, root: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="gateway.server")
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(("::", 0))
    port = sock.getsockname()[1]
    server = await start([alice(root, allow_from=[OTHER])], hosts=sock)
    assert server.server_port == port
    assert (await in_thread(login_reply, OTHER, port, "alice", "right", OTHER)).startswith("230")
    assert await in_thread(login_reply, "127.0.0.1", port, "alice", "right", "127.0.0.1") == (
        "530 wrong password"
    )
    # the client arrived as ::ffff:127.0.0.1 and was judged as the IPv4 address it is
    assert "login of 'alice' refused: 127.0.0.1 is in none of the allowed networks" in caplog.text


async def test_refusal_is_logged_with_its_reason(start, root: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="gateway.server")
    server = await start([alice(root, deny_from=["127.0.0.2/32"])])
    await in_thread(login_reply, "127.0.0.1", server.server_port, "alice", "right", OTHER)
    assert "login of 'alice' refused: 127.0.0.2 is in denied network 127.0.0.2/32" in caplog.text
    assert "failed login" not in caplog.text


async def test_right_password_from_a_refused_address_is_no_guess(start, root: Path) -> None:
    users = MemoryUserManager([alice(root, deny_from=[OTHER])])
    users.login_limiter = LoginLimiter(  # type: ignore[attr-defined]
        LimiterSettings(base_delay=0.3, max_delay=0.3, ban_after=2, account_lock_after=0)
    )
    server = await start(users)
    port = server.server_port
    # as many right passwords as it likes: 530 each time, never counted, never banned;
    # each answered after the delay a failure would have had, like a wrong password
    for _ in range(3):
        reply, took = await in_thread(timed_login_reply, "127.0.0.1", port, "alice", "right", OTHER)
        assert reply == "530 wrong password"
        assert took >= 0.25
    # wrong passwords from there still count: the second bans the address
    assert await in_thread(login_reply, "127.0.0.1", port, "alice", "wrong", OTHER) == (
        "530 wrong password"
    )
    assert await in_thread(login_reply, "127.0.0.1", port, "alice", "wrong", OTHER) == (
        "530 wrong password"
    )
    with pytest.raises(ftplib.error_temp, match="421"):
        await in_thread(login_reply, "127.0.0.1", port, "alice", "right", OTHER)
    # the account itself is not locked: its allowed address logs in
    assert (await in_thread(login_reply, "127.0.0.1", port, "alice", "right")).startswith("230")


async def test_refused_logins_hold_no_connection_slot(start, root: Path) -> None:
    server = await start([alice(root, deny_from=[OTHER], maximum_connections=1)])
    port = server.server_port
    for _ in range(2):
        assert await in_thread(login_reply, "127.0.0.1", port, "alice", "right", OTHER) == (
            "530 wrong password"
        )

    def holder_then_refused() -> tuple[str, str]:
        holder = connect("127.0.0.1", port)
        try:
            first = holder.login("alice", "right")
            # the only slot is taken: the refused address still reads "wrong password",
            # never "too many connections" (which would say the password was right)
            return first, login_reply("127.0.0.1", port, "alice", "right", OTHER)
        finally:
            holder.close()

    first, refused = await in_thread(holder_then_refused)
    assert first.startswith("230") and refused == "530 wrong password"


async def test_account_without_password_is_refused_at_user(start, root: Path) -> None:
    server = await start([User(base_path=root, allow_from=[OTHER], maximum_connections=1)])
    port = server.server_port
    for _ in range(2):
        assert await in_thread(login_reply, "127.0.0.1", port, "anonymous", "") == (
            "530 login incorrect"
        )
    # the refusals took no slot: the one slot is there for the allowed address
    assert (await in_thread(login_reply, "127.0.0.1", port, "anonymous", "", OTHER)).startswith(
        "230"
    )


# --------------------------------------------------------------------------- server-wide


def greeting(host: str, port: int, source: str | None = None) -> str:
    ftp = ftplib.FTP(timeout=STEP, source_address=(source, 0) if source else None)
    try:
        return ftp.connect(host, port)
    except ftplib.error_temp as exc:
        # refused: after the 421 the server closes the connection at once
        assert ftp.sock is not None and ftp.sock.recv(1) == b""
        return str(exc)
    finally:
        ftp.close()


async def test_server_allow_list_refuses_before_the_greeting(start, root: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="gateway.server")
    server = await start(
        [alice(root)], hosts=["127.0.0.1", "::1"], allow_from=[f"{OTHER}/32", "::1"],
        welcome_message="hello",
    )
    v4, v6 = port_of(server, socket.AF_INET), port_of(server, socket.AF_INET6)
    assert await in_thread(greeting, "127.0.0.1", v4) == "421 service not available for your address"
    assert await in_thread(greeting, "127.0.0.1", v4, OTHER) == "220 hello"
    assert await in_thread(greeting, "::1", v6) == "220 hello"
    assert (
        "connection refused before the greeting: 127.0.0.1 is in none of the allowed networks"
        in caplog.text
    )
    # nothing of a refused connection stays counted
    assert not server.sessions or all(s.client_host != "127.0.0.1" for s in server.sessions.values())


async def test_server_deny_list(start, root: Path) -> None:
    server = await start([alice(root)], hosts=["127.0.0.1", "::1"], deny_from=["127.0.0.0/8"])
    v4, v6 = port_of(server, socket.AF_INET), port_of(server, socket.AF_INET6)
    assert (await in_thread(greeting, "127.0.0.1", v4, OTHER)).startswith("421")
    assert (await in_thread(greeting, "::1", v6)).startswith("220")
    assert (await in_thread(login_reply, "::1", v6, "alice", "right")).startswith("230")


async def test_server_rules_can_change_while_serving(start, root: Path) -> None:
    from gateway.users.addresses import AddressRules

    server = await start([alice(root)])
    port = server.server_port
    assert (await in_thread(greeting, "127.0.0.1", port, OTHER)).startswith("220")
    server.address_rules = AddressRules.parse(deny=[OTHER])  # what a reload does
    assert (await in_thread(greeting, "127.0.0.1", port, OTHER)).startswith("421")
    assert (await in_thread(greeting, "127.0.0.1", port)).startswith("220")
