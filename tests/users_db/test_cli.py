"""``gateway users`` and ``gateway db`` round trips on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect, text

from gateway.cli import main
from gateway.config import load_settings
from gateway.config.model import StaticUser
from gateway.service.build import static_user
from gateway.users.database import admin, schema
from gateway.users.database.engine import create_engine
from tests.users_db.conftest import REPO, TEST_HASH_ENV, run_async


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch):
    for name, value in TEST_HASH_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GATEWAY_DATABASE_URL", raising=False)
    runner = CliRunner()

    def invoke(url: str, *args: str, input: str | None = None):  # noqa: A002
        return runner.invoke(main, [*args[:2], "--database-url", url, *args[2:]], input=input)

    return invoke


def stored_hash(url: str, login: str) -> str | None:
    async def read() -> str | None:
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                result = await connection.execute(
                    text("SELECT password_hash FROM users WHERE login = :login"), {"login": login}
                )
                return result.scalar_one()
        finally:
            await engine.dispose()

    return run_async(read)


def test_users_round_trip(cli, database_url: str) -> None:
    added = cli(database_url, "users", "add", "alice", "--root", "/srv/alice",
                "--password-stdin", "--max-connections", "3", input="first pass\n")
    assert added.exit_code == 0, added.output
    assert "first pass" not in added.output
    first = stored_hash(database_url, "alice")
    assert first is not None and first.startswith("$argon2id$") and "first pass" not in first

    listed = cli(database_url, "users", "list")
    assert listed.exit_code == 0 and "alice" in listed.output and "/srv/alice" in listed.output

    assert cli(database_url, "users", "grant", "alice", "/pub", "r").exit_code == 0
    assert cli(database_url, "users", "grant", "alice", "/pub/in", "rw").exit_code == 0
    assert cli(database_url, "users", "revoke", "alice", "/pub/in").exit_code == 0
    limits = cli(database_url, "users", "limits", "alice", "--write-limit", "1m",
                 "--max-connections", "none")
    assert limits.exit_code == 0, limits.output
    assert "write speed limit: 1048576" in limits.output

    shown = cli(database_url, "users", "show", "alice", "--json")
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.output)
    assert data["limits"]["maximum_connections"] is None
    assert data["limits"]["write_speed_limit"] == 1048576
    assert data["permissions"] == [
        {"path": "/", "readable": True, "writable": True},
        {"path": "/pub", "readable": True, "writable": False},
    ]
    assert data["enabled"] is True and data["has_password"] is True

    # prompt (hidden, confirmed) for a new password
    changed = cli(database_url, "users", "passwd", "alice", input="second\nsecond\n")
    assert changed.exit_code == 0, changed.output
    assert "second" not in changed.output.replace("Password", "")
    assert stored_hash(database_url, "alice") not in (None, first)

    assert cli(database_url, "users", "disable", "alice").exit_code == 0
    assert json.loads(cli(database_url, "users", "show", "alice", "--json").output)["enabled"] is False
    assert cli(database_url, "users", "enable", "alice").exit_code == 0
    assert json.loads(cli(database_url, "users", "show", "alice", "--json").output)["enabled"] is True

    # the code page of the account's file names: set, shown, refused when unknown, reset
    assert cli(database_url, "users", "set", "alice", "--encoding", "CP1251").exit_code == 0
    assert json.loads(cli(database_url, "users", "show", "alice", "--json").output)["encoding"] == "cp1251"
    wrong = cli(database_url, "users", "set", "alice", "--encoding", "klingon")
    assert wrong.exit_code == 1 and "bad encoding 'klingon'" in wrong.output
    assert cli(database_url, "users", "set", "alice", "--encoding", "").exit_code == 0
    assert json.loads(cli(database_url, "users", "show", "alice", "--json").output)["encoding"] is None

    assert cli(database_url, "users", "delete", "alice", "--yes").exit_code == 0
    assert "no users" in cli(database_url, "users", "list").output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("users", "add", "alice", "--root", "/srv/a", "--no-password"), "already exists"),
        (("users", "show", "bob"), "unknown user 'bob'"),
        (("users", "passwd", "bob", "--password-stdin"), "unknown user 'bob'"),
        (("users", "grant", "alice", "pub", "r"), "must be absolute"),
        (("users", "grant", "alice", "/a/../b", "r"), "'..' are not allowed"),
        (("users", "revoke", "alice", "/nothing"), "no rule for"),
        (("users", "limits", "alice", "--max-connections", "0"), "at least 1"),
        (("users", "limits", "alice", "--write-limit", "fast"), "bad write speed limit"),
        (("users", "add", "bob", "--root", "relative/dir", "--no-password"), "absolute path or a URL"),
        (("users", "add", "b o b", "--root", "/srv", "--no-password"), "bad login"),
        (("users", "add", "bob", "--root", "/srv", "--password-stdin"), "empty password"),
    ],
)
def test_clear_errors(cli, database_url: str, args: tuple[str, ...], message: str) -> None:
    assert cli(database_url, "users", "add", "alice", "--root", "/srv/a", "--no-password").exit_code == 0
    result = cli(database_url, *args, input="\n")
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_migrations_up_and_down_on_an_empty_database(cli, empty_database_url: str) -> None:
    up = cli(empty_database_url, "db", "upgrade")
    assert up.exit_code == 0, up.output
    assert schema.head_revision() in up.output
    added = cli(empty_database_url, "users", "add", "alice", "--root", "/srv", "--no-password")
    assert added.exit_code == 0, added.output

    down = cli(empty_database_url, "db", "downgrade", "base")
    assert down.exit_code == 0, down.output
    assert "base (empty)" in down.output

    async def tables() -> list[str]:
        engine = create_engine(empty_database_url)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        finally:
            await engine.dispose()

    assert set(run_async(tables)) <= {"alembic_version"}
    # commands that need the schema now say which command to run
    refused = cli(empty_database_url, "users", "list")
    assert refused.exit_code == 1 and "gateway db upgrade" in refused.output
    again = cli(empty_database_url, "db", "upgrade")
    assert again.exit_code == 0 and "users" in run_async(tables)
    assert "no users" in cli(empty_database_url, "users", "list").output


def test_unreachable_database_is_a_clear_error(cli) -> None:
    result = cli("postgresql://nobody:pw@127.0.0.1:9/none", "users", "list")
    assert result.exit_code == 1
    assert result.output.startswith(
        "Error: cannot reach the database postgresql+asyncpg://nobody:***@127.0.0.1:9/none: "
    )
    assert "check that it is running" in result.output and ":pw@" not in result.output
    assert "Traceback" not in result.output


def _root_of(cli, url: str, login: str) -> str:
    shown = cli(url, "users", "show", login, "--json")
    assert shown.exit_code == 0, shown.output
    return json.loads(shown.output)["storage_root"]


def test_add_without_root_gives_the_storage_root_of_serve(
    cli, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No --root: <storage root>/<login>, the root gateway serve gives an account of its
    configuration file, from the same file, variables and working directory."""
    for name in ("GATEWAY_CONFIG", "GATEWAY_STORAGE_ROOT", "GATEWAY_ROOT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)

    added = cli(database_url, "users", "add", "carol", "--no-password")
    assert added.exit_code == 0, added.output
    expected = tmp_path / "var" / "ftp" / "carol"
    assert f"files in {expected}" in added.output
    assert _root_of(cli, database_url, "carol") == str(expected)
    served = static_user(load_settings(None, env={}), StaticUser(login="carol"))
    assert Path(served.base_path) == expected.resolve()

    config = tmp_path / "gateway.toml"
    config.write_text('[storage]\nroot = "s3://bucket/customers/"\n')
    assert cli(database_url, "users", "add", "dave", "--no-password", "--config",
               str(config)).exit_code == 0
    assert _root_of(cli, database_url, "dave") == "s3://bucket/customers/dave"
    # an explicit root wins over the file's
    assert cli(database_url, "users", "add", "erin", "--no-password", "--config", str(config),
               "--root", "/srv/erin").exit_code == 0
    assert _root_of(cli, database_url, "erin") == "/srv/erin"

    monkeypatch.setenv("GATEWAY_STORAGE_ROOT", "srv/ftp")  # relative: to the working directory
    assert cli(database_url, "users", "add", "frank", "--no-password").exit_code == 0
    assert _root_of(cli, database_url, "frank") == str(tmp_path / "srv" / "ftp" / "frank")

    bad = tmp_path / "bad.toml"
    bad.write_text('[storage]\nfsync = "sometimes"\n')
    refused = cli(database_url, "users", "add", "gina", "--no-password", "--config", str(bad))
    assert refused.exit_code == 1
    assert refused.output.startswith(f"Error: bad configuration: {bad} line 2: storage.fsync")


def test_add_takes_the_database_from_the_configuration(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --config and no --database-url, the account lands where gateway serve -c
    looks for it."""
    for name, value in TEST_HASH_ENV.items():
        monkeypatch.setenv(name, value)
    for name in ("GATEWAY_DATABASE_URL", "GATEWAY_USERS_DATABASE_URL", "GATEWAY_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "gateway.toml"
    config.write_text(f'[storage]\nroot = "/srv/ftp"\n\n[users.database]\nurl = "{database_url}"\n')

    added = CliRunner().invoke(main, ["users", "add", "hana", "--no-password", "-c", str(config)])
    assert added.exit_code == 0, added.output

    async def info() -> admin.AccountInfo:
        engine = create_engine(database_url)
        try:
            return await admin.get_account(engine, "hana")
        finally:
            await engine.dispose()

    assert run_async(info).storage_root == "/srv/ftp/hana"
    assert not (tmp_path / "gateway.sqlite3").exists()  # not the embedded default


def test_console_script_reads_the_password_from_stdin(database_url: str) -> None:
    """The installed ``gateway`` command, as an operator runs it (env URL, stdin)."""
    env = {**os.environ, **TEST_HASH_ENV, "GATEWAY_DATABASE_URL": database_url}
    gateway = Path(sys.executable).with_name("gateway")
    added = subprocess.run(
        [str(gateway), "users", "add", "dave", "--root", "memory://", "--password-stdin"],
        input="from stdin\n", capture_output=True, text=True, env=env, cwd=REPO, timeout=60,
    )
    assert added.returncode == 0, added.stderr
    shown = subprocess.run(
        [str(gateway), "users", "show", "dave"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert "memory://" in shown.stdout and "from stdin" not in shown.stdout

    async def info() -> admin.AccountInfo:
        engine = create_engine(database_url)
        try:
            return await admin.get_account(engine, "dave")
        finally:
            await engine.dispose()

    assert run_async(info).has_password
