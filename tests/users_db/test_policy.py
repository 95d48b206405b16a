"""An account's storage policy in the database: stored, migrated, applied at login and
upload, and set with ``gateway users set``; on SQLite and PostgreSQL."""

from __future__ import annotations

import ftplib
import io
import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect, text

from gateway.cli import main
from gateway.users.database import AccountError, admin, schema
from gateway.users.database.engine import create_engine
from tests.users_db.conftest import (
    HOST,
    STEP,
    TEST_HASH_ENV,
    add_account,
    change,
    ftp_login,
    in_thread,
    run_async,
    schema_differences,
)

OTHER = "127.0.0.2"


def login_from(port: int, user: str, password: str, source: str | None = None) -> str:
    ftp = ftplib.FTP(timeout=STEP, source_address=(source, 0) if source else None)
    ftp.connect(HOST, port)
    try:
        return ftp.login(user, password)
    except ftplib.error_perm as exc:
        return str(exc)
    finally:
        ftp.close()


# ------------------------------------------------------------------------------ storage


async def test_policy_round_trip(database_url: str, root: Path, make_manager) -> None:
    await add_account(database_url, "alice", root=root)
    info = await change(database_url, admin.get_account, "alice")
    assert info.policy == {
        "allow_from": [], "deny_from": [], "allow_names": [], "deny_names": [],
        "hide_denied": False, "names_case_sensitive": False, "max_file_size": None,
    }
    await change(database_url, admin.set_policy, "alice", {
        "allow_from": ["10.0.0.0/8", "2001:db8::/32"],
        "deny_from": ["::ffff:10.6.6.0/120"],
        "allow_names": ["*.jpg", "*.mp4"],
        "deny_names": ["*.exe", "/locked/*"],
        "hide_denied": True,
        "max_file_size": "100m",
    })
    info = await change(database_url, admin.get_account, "alice")
    assert info.policy == {
        "allow_from": ["10.0.0.0/8", "2001:db8::/32"],
        "deny_from": ["10.6.6.0/24"],  # stored as the IPv4 network it names
        "allow_names": ["*.jpg", "*.mp4"],
        "deny_names": ["*.exe", "/locked/*"],
        "hide_denied": True, "names_case_sensitive": False,
        "max_file_size": 100 * 1024 * 1024,
    }
    manager = make_manager(database_url)
    _state, user, _info = await manager.get_user("alice")
    assert user is not None
    assert user.addresses.permits("10.1.2.3") and not user.addresses.permits("10.6.6.6")
    assert user.file_rules.max_file_size == 100 * 1024 * 1024
    assert user.file_rules.hidden("/a/setup.EXE")

    # lists are replaced as a whole; empty ones (and "none" for networks) clear them
    await change(database_url, admin.set_policy, "alice", {
        "allow_from": "none", "deny_names": [], "max_file_size": "none", "hide_denied": False,
    })
    info = await change(database_url, admin.get_account, "alice")
    assert info.policy["allow_from"] == [] and info.policy["deny_names"] == []
    assert info.policy["max_file_size"] is None and info.policy["allow_names"] == ["*.jpg", "*.mp4"]


async def test_an_account_can_be_created_with_its_policy(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await admin.add_user(engine, "cam", password_hash=None, storage_root="/srv/cam",
                             policy={"deny_names": ["*.exe"], "allow_from": "10.0.0.0/8"})
        listed = {a.login: a.policy for a in await admin.list_accounts(engine)}
    finally:
        await engine.dispose()
    assert listed["cam"]["deny_names"] == ["*.exe"]
    assert listed["cam"]["allow_from"] == ["10.0.0.0/8"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"allow_from": ["10.0.0.1/8"]}, "did you mean 10.0.0.0/8"),
        ({"deny_from": ["example.com"]}, "bad network"),
        ({"deny_names": ["a\x01b"]}, "control characters"),
        ({"allow_names": ["incoming/*"]}, "must start with /"),
        ({"max_file_size": "huge"}, "bad max file size"),
        ({"max_file_size": "0"}, "at least 1"),
        ({"colour": "blue"}, "unknown setting"),
        ({"hide_denied": "false"}, "bad hide denied 'false': true or false"),
    ],
)
async def test_bad_policy_values_are_refused(
    database_url: str, root: Path, changes: dict, message: str
) -> None:
    await add_account(database_url, "alice", root=root)
    with pytest.raises(AccountError, match=message):
        await change(database_url, admin.set_policy, "alice", changes)
    info = await change(database_url, admin.get_account, "alice")
    assert info.policy["allow_from"] == [] and info.policy["max_file_size"] is None


async def test_a_value_written_around_the_cli_keeps_the_account_out(
    database_url: str, root: Path, make_manager, make_server, caplog
) -> None:
    await add_account(database_url, "alice", root=root)
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text("UPDATE users SET allow_from = :value WHERE login = 'alice'"),
                {"value": json.dumps(["not-a-network"])},
            )
    finally:
        await engine.dispose()
    server = await make_server(make_manager(database_url))
    assert await in_thread(login_from, server.server_port, "alice", "secret") == (
        "530 wrong password"
    )
    assert "account 'alice' refused: its storage policy is not valid" in caplog.text


# ----------------------------------------------------------------------------- sessions


async def test_networks_are_checked_at_login_and_slots_given_back(
    database_url: str, root: Path, make_manager, make_server, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.server")
    await add_account(database_url, "alice", root=root, maximum_connections=1)
    await change(database_url, admin.set_policy, "alice", {"deny_from": [OTHER]})
    server = await make_server(make_manager(database_url))
    port = server.server_port
    for _ in range(2):  # a right password from there: refused, and the slot given back
        assert await in_thread(login_from, port, "alice", "secret", OTHER) == "530 wrong password"

    def holder_then_refused() -> tuple[str, str]:
        holder = ftp_login(port, "alice", "secret")
        try:
            # the one slot is taken: from the refused address still "wrong password",
            # not "too many connections", which would say the password was right
            return holder.sendcmd("NOOP"), login_from(port, "alice", "secret", OTHER)
        finally:
            holder.close()

    noop, refused = await in_thread(holder_then_refused)
    assert noop.startswith("200") and refused == "530 wrong password"
    assert "login of 'alice' refused: 127.0.0.2 is in denied network 127.0.0.2/32" in caplog.text


async def test_refused_right_passwords_are_not_counted_on_any_node(
    database_url: str, root: Path, make_manager, make_server
) -> None:
    from gateway.users.database.limiter import LimiterSettings, LoginLimiter

    await add_account(database_url, "alice", root=root)
    await change(database_url, admin.set_policy, "alice", {"deny_from": [OTHER]})
    manager = make_manager(database_url, login_limiter=LoginLimiter(
        LimiterSettings(base_delay=0.01, max_delay=0.01, ban_after=2, account_lock_after=0)
    ))
    assert manager.login_failures is not None  # the counts are shared in the database
    server = await make_server(manager)
    port = server.server_port
    for _ in range(3):  # more than ban_after: none of them counted
        assert await in_thread(login_from, port, "alice", "secret", OTHER) == "530 wrong password"
    await manager.login_failures.drain()

    async def failures() -> list[tuple[str, int]]:
        engine = create_engine(database_url)
        try:
            async with engine.connect() as connection:
                result = await connection.execute(text(
                    "SELECT key, failures FROM login_failures WHERE scope = 'network'"
                ))
                return [(row.key, row.failures) for row in result if row.failures]
        finally:
            await engine.dispose()

    assert await failures() == []
    # a wrong password from there counts, in the database too
    assert await in_thread(login_from, port, "alice", "nope", OTHER) == "530 wrong password"
    await manager.login_failures.drain()
    assert await failures() == [(f"{OTHER}/32", 1)]


async def test_file_rules_from_the_database(
    database_url: str, root: Path, make_manager, make_server
) -> None:
    (root / "tool.exe").write_bytes(b"MZ")
    await add_account(database_url, "alice", root=root)
    await change(database_url, admin.set_policy, "alice", {
        "deny_names": ["*.exe"], "hide_denied": True, "max_file_size": "1k",
    })
    server = await make_server(make_manager(database_url))

    def scenario() -> tuple[list[str], str, str, str]:
        ftp = ftp_login(server.server_port, "alice", "secret")
        try:
            names = ftp.nlst()
            try:
                ftp.storbinary("STOR setup.exe", io.BytesIO(b"x"))
                name_reply = "accepted"
            except ftplib.error_perm as exc:
                name_reply = str(exc)
            try:
                ftp.sendcmd("ALLO 4096")
                size_reply = "accepted"
            except ftplib.error_perm as exc:
                size_reply = str(exc)
            ftp.sendcmd("ALLO 1024")  # the refused size no longer stands for the upload
            ok = ftp.storbinary("STOR fits.bin", io.BytesIO(b"y" * 1024))
            return names, name_reply, size_reply, ok
        finally:
            ftp.quit()

    names, name_reply, size_reply, ok = await in_thread(scenario)
    assert names == []
    assert name_reply.startswith("553 file name not allowed: 'setup.exe'")
    assert size_reply == "552 exceeded storage allocation: files may be at most 1024 bytes (1 KiB)"
    assert ok.startswith("226")


# --------------------------------------------------------------------------- migrations


async def test_0004_upgrade_and_downgrade_keep_the_accounts(empty_database_url: str) -> None:
    engine = create_engine(empty_database_url)
    try:
        await schema.upgrade(engine, "0003_login_failures")
        async with engine.begin() as connection:
            await connection.execute(text(
                "INSERT INTO users (login, enabled, home_path, storage_root, created_at,"
                " updated_at) VALUES ('alice', true, '/', '/srv/alice', 0, 0)"
            ))
            await connection.execute(text(
                "INSERT INTO permissions (user_id, path, readable, writable)"
                " SELECT id, '/pub', true, false FROM users WHERE login = 'alice'"
            ))
        await schema.upgrade(engine)
        assert await schema.current_revision(engine) == "0007_event_outbox"
        info = await admin.get_account(engine, "alice")
        assert info.policy["hide_denied"] is False and info.policy["allow_from"] == []
        assert info.permissions == [("/pub", True, False)]
        await admin.set_policy(engine, "alice", {"deny_names": ["*.exe"], "max_file_size": 10})

        await schema.downgrade(engine, "0003_login_failures")
        async with engine.connect() as connection:
            columns = await connection.run_sync(
                lambda sync: {c["name"] for c in inspect(sync).get_columns("users")}
            )
            kept = (await connection.execute(text(
                "SELECT u.login, p.path FROM users u JOIN permissions p ON p.user_id = u.id"
            ))).all()
        assert not columns & set(admin.POLICY_FIELDS)
        assert [tuple(row) for row in kept] == [("alice", "/pub")]  # nothing cascaded away

        await schema.upgrade(engine)
        info = await admin.get_account(engine, "alice")
        assert info.policy["deny_names"] == [] and info.permissions == [("/pub", True, False)]
    finally:
        await engine.dispose()


async def test_migrated_schema_is_the_models(database_url: str) -> None:
    differences = await schema_differences(database_url)
    assert [d for d in differences if "users" in repr(d)] == []


# ---------------------------------------------------------------------------------- CLI


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch):
    for name, value in TEST_HASH_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GATEWAY_DATABASE_URL", raising=False)
    runner = CliRunner()

    def invoke(url: str, *args: str):
        return runner.invoke(main, [*args[:2], "--database-url", url, *args[2:]])

    return invoke


def test_cli_sets_and_shows_the_policy(cli, database_url: str) -> None:
    assert cli(database_url, "users", "add", "cam", "--root", "/srv/cam", "--no-password").exit_code == 0
    result = cli(
        database_url, "users", "set", "cam",
        "--allow-from", "10.0.0.0/8,192.168.0.0/16", "--allow-from", "2001:db8::/32",
        "--deny-from", "10.6.6.0/24",
        "--allow-names", "*.jpg", "--allow-names", "*.mp4",
        "--deny-names", "*.exe", "--hide-denied", "--names-case-sensitive",
        "--max-file-size", "100m",
    )
    assert result.exit_code == 0, result.output
    policy = json.loads(cli(database_url, "users", "show", "cam", "--json").output)["policy"]
    assert policy == {
        "allow_from": ["10.0.0.0/8", "192.168.0.0/16", "2001:db8::/32"],
        "deny_from": ["10.6.6.0/24"],
        "allow_names": ["*.jpg", "*.mp4"],
        "deny_names": ["*.exe"],
        "hide_denied": True,
        "names_case_sensitive": True,
        "max_file_size": 104857600,
    }
    shown = cli(database_url, "users", "show", "cam").output
    assert "allow from: 10.0.0.0/8, 192.168.0.0/16, 2001:db8::/32" in shown
    assert "deny names:  *.exe  (hidden)" in shown
    assert "max file size: 104857600" in shown

    cleared = cli(database_url, "users", "set", "cam", "--allow-from", "none",
                  "--deny-names", "", "--show-denied", "--max-file-size", "none")
    assert cleared.exit_code == 0, cleared.output
    policy = json.loads(cli(database_url, "users", "show", "cam", "--json").output)["policy"]
    assert policy["allow_from"] == [] and policy["deny_names"] == []
    assert policy["hide_denied"] is False and policy["max_file_size"] is None
    assert policy["allow_names"] == ["*.jpg", "*.mp4"]  # not given: unchanged


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--allow-from", "10.0.0.1/8"), "did you mean 10.0.0.0/8"),
        (("--deny-from", "nowhere"), "bad network 'nowhere'"),
        (("--deny-names", "a/b"), "must start with /"),
        (("--max-file-size", "lots"), "bad max file size"),
    ],
)
def test_cli_refuses_bad_values_and_writes_nothing(
    cli, database_url: str, args: tuple[str, ...], message: str
) -> None:
    assert cli(database_url, "users", "add", "cam", "--root", "/srv/cam", "--no-password").exit_code == 0
    # a good value given with the bad one is not written either
    result = cli(database_url, "users", "set", "cam", "--home", "/elsewhere",
                 "--deny-names", "*.exe", *args)
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output
    shown = json.loads(cli(database_url, "users", "show", "cam", "--json").output)
    assert shown["policy"]["deny_names"] == [] and shown["home_path"] == "/"


def test_cli_set_refuses_an_unknown_user(cli, database_url: str) -> None:
    result = cli(database_url, "users", "set", "nobody", "--max-file-size", "1m")
    assert result.exit_code == 1 and "unknown user 'nobody'" in result.output


def test_schema_head_is_0004() -> None:
    assert schema.head_revision() == "0007_event_outbox"
    assert run_async is not None  # the fixtures' helper stays importable from here
