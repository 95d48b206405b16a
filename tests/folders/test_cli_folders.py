"""``gateway folders ...`` and ``gateway users mount/unmount``, then ``gateway serve``
with the folders they made; and ``[[folders]]`` in the configuration file."""

from __future__ import annotations

import ftplib
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from gateway.cli import main
from tests.service.conftest import base_env
from tests.users_db.conftest import STEP, TEST_HASH_ENV


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, database_url: str) -> Any:
    for name, value in TEST_HASH_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GATEWAY_DATABASE_URL", raising=False)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Any:
        return runner.invoke(main, [*args[:2], "--database-url", database_url, *args[2:]], input=input)

    return invoke


def ok(result: Any) -> str:
    assert result.exit_code == 0, result.output
    return str(result.output)


def error(result: Any) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    return str(result.output)


def test_folders_add_list_show_delete(cli: Any, tmp_path: Path) -> None:
    ok(cli("users", "add", "alice", "--root", str(tmp_path / "alice"), "--no-password"))
    ok(cli("users", "add", "bob", "--root", "memory://bob", "--no-password"))
    assert "no folders" in ok(cli("folders", "list"))
    added = ok(cli("folders", "add", "shared", "s3://bucket/shared", "--option", "region_name=eu-west-1",
                   "--option", "part_size=8388608", "--option", "aws_secret_access_key=hidden",
                   "--description", "for everyone"))
    assert "folder 'shared' added" in added
    ok(cli("folders", "add", "archive", str(tmp_path / "archive")))
    assert "already exists" in error(cli("folders", "add", "shared", "memory://"))
    assert "bad storage root" in error(cli("folders", "add", "rel", "relative/path"))
    assert "bad folder name" in error(cli("folders", "add", "a b", "memory://"))
    assert "KEY=VALUE" in error(cli("folders", "add", "x", "memory://", "--option", "novalue"))

    ok(cli("users", "mount", "alice", "/shared", "shared", "--read-only"))
    ok(cli("users", "mount", "bob", "/pub/shared/", "shared"))
    ok(cli("users", "mount", "alice", "/archive", "archive"))
    assert "already has a folder at /shared" in error(cli("users", "mount", "alice", "/shared", "archive"))
    assert "unknown folder 'nope'" in error(cli("users", "mount", "alice", "/x", "nope"))
    assert "unknown user 'carol'" in error(cli("users", "mount", "carol", "/x", "shared"))
    assert "must be absolute" in error(cli("users", "mount", "alice", "x", "shared"))
    assert "'..'" in error(cli("users", "mount", "alice", "/a/../b", "shared"))

    listed = ok(cli("folders", "list"))
    assert "archive" in listed and "for everyone" in listed
    as_json = {f["name"]: f for f in json.loads(ok(cli("folders", "list", "--json")))}
    assert as_json["shared"]["options"] == {
        "region_name": "eu-west-1", "part_size": 8388608, "aws_secret_access_key": "***",
    }
    assert as_json["shared"]["mounts"] == [
        {"login": "alice", "path": "/shared", "read_only": True},
        {"login": "bob", "path": "/pub/shared", "read_only": False},
    ]
    shown = ok(cli("folders", "show", "shared"))
    assert "s3://bucket/shared" in shown and "hidden" not in shown and "alice  at /shared  read-only" in shown
    assert "unknown folder 'nope'" in error(cli("folders", "show", "nope"))

    user = ok(cli("users", "show", "alice"))
    assert "/shared  shared  (s3://bucket/shared)  read-only" in user
    assert "/archive  archive" in user
    mounts = json.loads(ok(cli("users", "show", "alice", "--json")))["mounts"]
    assert [m["path"] for m in mounts] == ["/archive", "/shared"]

    refused = error(cli("folders", "delete", "shared"))
    assert "is mounted (alice:/shared, bob:/pub/shared)" in refused and "--force" in refused
    ok(cli("users", "unmount", "alice", "/shared"))
    assert "has no folder at /shared" in error(cli("users", "unmount", "alice", "/shared"))
    forced = ok(cli("folders", "delete", "shared", "--force"))
    assert "unmounted from 'bob' at /pub/shared" in forced
    assert "folder 'shared' deleted" in forced
    assert "unknown folder 'shared'" in error(cli("folders", "delete", "shared"))
    assert "folders:   none" in ok(cli("users", "show", "bob"))
    # deleting an account takes its mounts with it; the folder stays
    ok(cli("users", "delete", "alice", "--yes"))
    assert json.loads(ok(cli("folders", "list", "--json")))[0]["mounts"] == []
    ok(cli("folders", "delete", "archive"))


def ftp_session(port: int, work: Any) -> Any:
    ftp = ftplib.FTP(timeout=STEP)
    ftp.connect("127.0.0.1", port)
    ftp.login("alice", "pw")
    try:
        return work(ftp)
    finally:
        ftp.quit()


def tree_work(ftp: ftplib.FTP) -> dict[str, Any]:
    seen: dict[str, Any] = {"root": sorted(ftp.nlst("/"))}
    ftp.storbinary("STOR /inbox/a.txt", io.BytesIO(b"hello"))
    ftp.rename("/inbox/a.txt", "/archive/a.txt")
    ftp.mkd("/archive/dir")
    try:
        ftp.rename("/archive/dir", "/inbox/dir")
    except ftplib.error_perm as exc:
        seen["dir move"] = str(exc)
    try:
        ftp.storbinary("STOR /ro/x", io.BytesIO(b"x"))
    except ftplib.error_perm as exc:
        seen["read-only"] = str(exc)
    seen["inbox"] = ftp.nlst("/inbox")
    return seen


def check_tree(seen: dict[str, Any], archive: Path) -> None:
    assert [Path(n).name for n in seen["root"]] == ["archive", "inbox", "ro"]
    assert (archive / "a.txt").read_bytes() == b"hello"
    assert seen["dir move"].startswith("553 ") and "between folders" in seen["dir move"]
    assert seen["read-only"].startswith("550")
    assert seen["inbox"] == []
    assert (archive / "dir").is_dir()


@pytest.mark.parametrize("database_kind", ["sqlite"], indirect=True)  # a process start is slow
def test_gateway_serve_with_folders_made_by_the_cli(
    cli: Any, database_url: str, tmp_path: Path, start_gateway: Any
) -> None:
    archive, readonly = tmp_path / "archive", tmp_path / "ro"
    readonly.mkdir()
    ok(cli("users", "add", "alice", "--root", str(tmp_path / "alice"), "--password-stdin", input="pw\n"))
    ok(cli("folders", "add", "archive", str(archive)))
    ok(cli("folders", "add", "inbox", "memory://inbox"))
    ok(cli("folders", "add", "ro", str(readonly)))
    ok(cli("users", "mount", "alice", "/archive", "archive"))
    ok(cli("users", "mount", "alice", "/inbox", "inbox"))
    ok(cli("users", "mount", "alice", "/ro", "ro", "--read-only"))
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[[listeners]]\nhost = "127.0.0.1"\nport = 0\n\n[users.database]\nurl = "{database_url}"\n'
    )
    gateway = start_gateway("-c", str(config))
    seen = ftp_session(gateway.port, tree_work)
    check_tree(seen, archive)
    assert list(readonly.iterdir()) == []


def test_gateway_serve_with_folders_in_the_configuration(tmp_path: Path, start_gateway: Any) -> None:
    archive, readonly = tmp_path / "archive", tmp_path / "ro"
    readonly.mkdir()
    hashed = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "hash-password", "--password-stdin"], input="pw\n",
        capture_output=True, text=True, env=base_env(), timeout=60, check=True,
    ).stdout.strip()
    config = tmp_path / "gateway.toml"
    config.write_text(f"""
[[listeners]]
host = "127.0.0.1"
port = 0

[[folders]]
name = "archive"
root = "{archive}"

[[folders]]
name = "inbox"
root = "memory://inbox"

[[folders]]
name = "ro"
root = "{readonly}"
read_only = true

[[users.static]]
login = "alice"
password_hash = "{hashed}"
root = "{tmp_path / 'alice'}"
mounts = [{{path = "/archive", folder = "archive"}}, {{path = "/inbox", folder = "inbox"}},
          {{path = "/ro", folder = "ro"}}]
""")
    gateway = start_gateway("-c", str(config))
    seen = ftp_session(gateway.port, tree_work)
    check_tree(seen, archive)
    assert list(readonly.iterdir()) == []


def test_configuration_errors_name_the_folder(tmp_path: Path) -> None:
    from gateway.config import ConfigError, load_settings

    config = tmp_path / "gateway.toml"
    config.write_text(
        '[[users.static]]\nlogin = "anonymous"\nmounts = [{path = "/x", folder = "missing"}]\n'
    )
    with pytest.raises(ConfigError, match="no \\[\\[folders\\]\\] entry is named 'missing'"):
        load_settings(config)
    config.write_text('[[folders]]\nname = "a"\n')
    with pytest.raises(ConfigError, match="root is required"):
        load_settings(config)
    config.write_text(
        '[[folders]]\nname = "a"\nroot = "memory://"\n\n[[users.static]]\nlogin = "anonymous"\n'
        'mounts = [{path = "x", folder = "a"}]\n'
    )
    with pytest.raises(ConfigError, match="must be absolute"):
        load_settings(config)
