"""Logins, rights by path, limits and throttles from the database, over real FTP."""

from __future__ import annotations

import ftplib
import io
import socket
import struct
import time
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from gateway.users.database import admin
from gateway.users.database.engine import create_engine
from gateway.users.database.hashing import HashSettings
from tests.users_db.conftest import (
    add_account,
    change,
    eventually,
    ftp_connect,
    ftp_login,
    in_thread,
    login_error,
)


async def test_login_with_the_stored_password(database_url, root: Path, make_manager, make_server) -> None:
    (root / "hello.txt").write_bytes(b"hi")
    await add_account(database_url, "alice", "s3cret", root=root)
    server = await make_server(make_manager(database_url))

    def scenario() -> list[str]:
        ftp = ftp_login(server.server_port, "alice", "s3cret")
        try:
            return ftp.nlst()
        finally:
            ftp.quit()

    assert await in_thread(scenario) == ["hello.txt"]


async def test_unknown_user_and_wrong_password_look_the_same(
    database_url, root: Path, make_manager, make_server
) -> None:
    await add_account(database_url, "alice", "s3cret", root=root)
    await add_account(database_url, "carol", "s3cret", root=root)
    await change(database_url, admin.set_enabled, "carol", False)
    server = await make_server(make_manager(database_url))

    def replies(user: str, password: str) -> tuple[str, str]:
        ftp = ftp_connect(server.server_port)
        try:
            user_reply = ftp.sendcmd(f"USER {user}")
            try:
                pass_reply = ftp.sendcmd(f"PASS {password}")
            except ftplib.error_perm as exc:
                pass_reply = str(exc)
            return user_reply, pass_reply
        finally:
            ftp.close()

    wrong = await in_thread(replies, "alice", "nope")
    unknown = await in_thread(replies, "mallory", "nope")
    disabled = await in_thread(replies, "carol", "s3cret")
    assert wrong[0].startswith("331") and wrong[1].startswith("530")
    assert wrong == unknown == disabled


async def test_unknown_and_wrong_take_about_the_same_time(
    database_url, root: Path, make_manager, make_server
) -> None:
    # a hash cost that dominates the noise: ~10 ms per verification
    settings = HashSettings(time_cost=2, memory_cost=8 * 1024, parallelism=1)
    manager = make_manager(database_url, hashing=settings)
    engine = create_engine(database_url)
    try:
        await admin.add_user(
            engine, "alice", password_hash=manager.hashing.hash("s3cret"), storage_root=str(root)
        )
    finally:
        await engine.dispose()
    server = await make_server(manager)

    def timed(user: str) -> float:
        ftp = ftp_connect(server.server_port)
        try:
            started = time.perf_counter()
            ftp.sendcmd(f"USER {user}")
            with pytest.raises(ftplib.error_perm):
                ftp.sendcmd("PASS wrong")
            return time.perf_counter() - started
        finally:
            ftp.close()

    await in_thread(timed, "alice")  # warm the cache for both
    await in_thread(timed, "mallory")
    # interleaved, so a change of the machine's load weighs on both sides alike
    knowns, unknowns = [], []
    for _ in range(9):
        knowns.append(await in_thread(timed, "alice"))
        unknowns.append(await in_thread(timed, "mallory"))
    known, unknown = sorted(knowns)[4], sorted(unknowns)[4]
    assert known > 0.002 and unknown > 0.002, (known, unknown)  # the hash ran in both
    assert 0.5 < unknown / known < 2.0, (known, unknown)


async def test_anonymous_exists_only_when_created(database_url, root: Path, make_manager, make_server) -> None:
    server = await make_server(make_manager(database_url))
    error = await in_thread(login_error, server.server_port, "anonymous", "guest@")
    assert error.startswith("530")

    await add_account(database_url, "anonymous", None, root=root, rules=[("/", True, False)])

    def anonymous() -> str:
        ftp = ftp_connect(server.server_port)
        try:
            reply = ftp.sendcmd("USER anonymous")  # no password asked
            ftp.pwd()
            return reply
        finally:
            ftp.close()

    async def logs_in() -> bool:
        try:
            return (await in_thread(anonymous)).startswith("230")
        except ftplib.error_perm:
            return False

    await eventually(logs_in)  # after the negative cache entry expired


async def test_permissions_by_path(database_url, root: Path, make_manager, make_server) -> None:
    (root / "pub").mkdir()
    (root / "pub" / "incoming").mkdir()
    (root / "private").mkdir()
    (root / "pub" / "file.txt").write_bytes(b"data")
    await add_account(
        database_url,
        "alice",
        "s3cret",
        root=root,
        rules=[("/", False, False), ("/pub", True, False), ("/pub/incoming", True, True)],
    )
    server = await make_server(make_manager(database_url))

    def scenario() -> dict[str, str]:
        outcome: dict[str, str] = {}
        ftp = ftp_login(server.server_port, "alice", "s3cret")
        try:
            outcome["read pub"] = ftp.retrbinary("RETR /pub/file.txt", io.BytesIO().write)
            for name, command in (
                ("write pub", "STOR /pub/new.txt"),
                ("write incoming", "STOR /pub/incoming/new.txt"),
                ("write private", "STOR /private/new.txt"),
            ):
                try:
                    outcome[name] = ftp.storbinary(command, io.BytesIO(b"x"))
                except ftplib.error_perm as exc:
                    outcome[name] = str(exc)
            try:
                outcome["list private"] = str(ftp.nlst("/private"))
            except ftplib.error_perm as exc:
                outcome["list private"] = str(exc)
        finally:
            ftp.quit()
        return outcome

    outcome = await in_thread(scenario)
    assert outcome["read pub"].startswith("226")
    assert outcome["write pub"].startswith("550")
    assert outcome["write incoming"].startswith("226")
    assert outcome["write private"].startswith("550")
    assert outcome["list private"].startswith("550")
    assert (root / "pub" / "incoming" / "new.txt").read_bytes() == b"x"
    assert not (root / "pub" / "new.txt").exists()


async def test_maximum_connections_per_user(database_url, root: Path, make_manager, make_server) -> None:
    await add_account(database_url, "alice", "s3cret", root=root, maximum_connections=2)
    server = await make_server(make_manager(database_url))
    port = server.server_port
    first = await in_thread(ftp_login, port, "alice", "s3cret")
    second = await in_thread(ftp_login, port, "alice", "s3cret")
    try:
        error = await in_thread(login_error, port, "alice", "s3cret")
        assert error.startswith("530") and "too many connections" in error
    finally:
        await in_thread(first.quit)

    async def third_logs_in() -> bool:
        try:
            ftp = await in_thread(ftp_login, port, "alice", "s3cret")
        except ftplib.error_perm:
            return False
        await in_thread(ftp.quit)
        return True

    await eventually(third_logs_in)
    await in_thread(second.quit)


async def test_abruptly_dead_sessions_give_their_slot_back(
    database_url, root: Path, make_manager, make_server
) -> None:
    await add_account(database_url, "alice", "s3cret", root=root, maximum_connections=1)
    server = await make_server(make_manager(database_url))
    port = server.server_port
    ftp = await in_thread(ftp_login, port, "alice", "s3cret")
    assert (await in_thread(login_error, port, "alice", "s3cret")).startswith("530")
    # reset the connection without QUIT: the peer vanishes
    ftp.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ftp.close()  # closes the socket and its file: the kernel sends RST

    async def logs_in() -> bool:
        try:
            again = await in_thread(ftp_login, port, "alice", "s3cret")
        except ftplib.error_perm:
            return False
        await in_thread(again.quit)
        return True

    await eventually(logs_in)
    engine = create_engine(database_url)
    try:
        info = await admin.get_account(engine, "alice")
    finally:
        await engine.dispose()
    assert info.sessions == 0  # every slot given back, none leaked


async def test_per_user_throttle_is_applied(database_url, root: Path, make_manager, make_server) -> None:
    size = 96 * 1024
    (root / "big.bin").write_bytes(b"\x01" * size)
    limit = 64 * 1024
    # aioftp's naming: "write" is what the server writes to the client (RETR)
    await add_account(database_url, "slow", "pw", root=root, write_speed_limit_per_connection=limit)
    await add_account(database_url, "fast", "pw", root=root)
    server = await make_server(make_manager(database_url))

    def download(user: str) -> tuple[float, int]:
        ftp = ftp_login(server.server_port, user, "pw")
        try:
            sink = io.BytesIO()
            started = time.perf_counter()
            ftp.retrbinary("RETR big.bin", sink.write)
            return time.perf_counter() - started, len(sink.getvalue())
        finally:
            ftp.quit()

    slow_time, slow_size = await in_thread(download, "slow")
    fast_time, fast_size = await in_thread(download, "fast")
    assert slow_size == fast_size == size
    # at 64 KiB/s, 96 KiB cannot take much less than 1.5 s (allow the first burst)
    assert slow_time >= 0.6 * size / limit, slow_time
    assert fast_time < slow_time / 3, (fast_time, slow_time)


async def test_changes_apply_to_new_logins_within_the_ttl(
    database_url, root: Path, make_manager, make_server
) -> None:
    await add_account(database_url, "alice", "old", root=root)
    server = await make_server(make_manager(database_url, cache_ttl=0.3))
    port = server.server_port
    await in_thread(lambda: ftp_login(port, "alice", "old").quit())

    await change(database_url, admin.set_password_hash, "alice", PasswordHasher(
        time_cost=1, memory_cost=8, parallelism=1).hash("new"))

    async def new_password_works() -> bool:
        try:
            ftp = await in_thread(ftp_login, port, "alice", "new")
        except ftplib.error_perm:
            return False
        await in_thread(ftp.quit)
        return True

    started = time.monotonic()
    await eventually(new_password_works, timeout=5)
    assert time.monotonic() - started < 3
    assert (await in_thread(login_error, port, "alice", "old")).startswith("530")

    await change(database_url, admin.set_enabled, "alice", False)

    async def refused() -> bool:
        try:
            ftp = await in_thread(ftp_login, port, "alice", "new")
        except ftplib.error_perm:
            return True
        await in_thread(ftp.quit)
        return False

    await eventually(refused, timeout=5)


async def test_password_rehashed_when_parameters_change(
    database_url, root: Path, make_manager, make_server
) -> None:
    await add_account(database_url, "alice", "s3cret", root=root)  # made with the test cost
    stronger = HashSettings(time_cost=2, memory_cost=16, parallelism=1)
    server = await make_server(make_manager(database_url, hashing=stronger))
    await in_thread(lambda: ftp_login(server.server_port, "alice", "s3cret").quit())

    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            stored = (
                await connection.exec_driver_sql("SELECT password_hash FROM users WHERE login = 'alice'")
            ).scalar_one()
    finally:
        await engine.dispose()
    assert stored.startswith("$argon2id$") and "m=16,t=2,p=1" in stored
    assert "s3cret" not in stored
    # and the new hash still logs in
    await in_thread(lambda: ftp_login(server.server_port, "alice", "s3cret").quit())


async def test_account_encoding_from_the_database(database_url, root: Path, make_manager, make_server) -> None:
    """A device account whose names travel in cp1251 on a UTF-8 listener."""
    await add_account(database_url, "camera", "s3cret", root=root)
    await change(database_url, admin.set_home, "camera", encoding="cp1251")
    server = await make_server(make_manager(database_url))
    name = "кадр-1.jpg"

    def scenario() -> list[str]:
        ftp = ftplib.FTP(timeout=30, encoding="cp1251")
        ftp.connect("127.0.0.1", server.server_port)
        ftp.login("camera", "s3cret")
        try:
            ftp.storbinary(f"STOR {name}", io.BytesIO(b"frame"))
            return ftp.nlst()
        finally:
            ftp.quit()

    assert await in_thread(scenario) == [name]
    assert (root / name).read_bytes() == b"frame"
