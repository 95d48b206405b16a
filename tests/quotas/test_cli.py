"""``gateway users quota``: show, set, and rescan after files changed around the gateway."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.cli.users import users
from tests.service.conftest import run_cli

from .conftest import (
    KIB,
    PASSWORD,
    Storage,
    account_with_quota,
    add_account,
    in_thread,
    login,
    store,
    usage_of,
)


def quota_cli(database_url: str, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    """``gateway users quota`` in a process of its own."""
    done = run_cli("users", "quota", "--database-url", database_url, *args, cwd=tmp_path)
    return done.returncode, done.stdout, done.stderr


def quota_command(database_url: str, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    """The same command run in this process (in a thread: it runs its own event loop)."""
    result = CliRunner().invoke(users, ["quota", "--database-url", database_url, *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("database_kind", ["sqlite"])
async def test_show_and_set(database_url, tmp_path: Path) -> None:
    await add_account(database_url, "alice", PASSWORD, root=tmp_path / "alice")
    code, out, err = await in_thread(quota_command, database_url, tmp_path, "alice")
    assert (code, out) == (0, "user: alice\nquota: none (usage not counted)\n"), err

    code, out, err = await in_thread(quota_command, database_url, tmp_path, "alice", "--set",
                                     "max-bytes=10G", "--set", "max-files=500",
                                     "--set", "download-per-month=1.5g")
    assert code == 0, err
    assert "usage of 'alice' is counted from now on" in out
    assert "max-bytes: 10 GiB   used: 0 bytes" in out
    assert "max-files: 500   used: 0" in out
    assert "download-per-month: 1.50 GiB" in out

    code, out, err = await in_thread(quota_command, database_url, tmp_path, "--json", "alice",
                                     "--set", "max-files=none")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["limits"] == {
        "max_bytes": 10 << 30, "max_files": None, "upload_per_day": None,
        "upload_per_month": None, "download_per_day": None, "download_per_month": 3 << 29,
    }
    assert shown["usage"] == {"bytes": 0, "files": 0, "reserved": 0}

    code, _out, err = await in_thread(quota_command, database_url, tmp_path, "alice", "--set", "max-bytes=lots")
    assert code != 0 and "max-bytes: expected a size such as 10G or 512MiB (or none), got 'lots'" in err
    code, _out, err = await in_thread(quota_command, database_url, tmp_path, "alice", "--set", "speed=1")
    assert code != 0 and "expected NAME=VALUE with NAME one of max-bytes, max-files" in err
    code, _out, err = await in_thread(quota_command, database_url, tmp_path, "bob")
    assert code != 0 and "unknown user 'bob'" in err

    code, out, err = await in_thread(quota_command, database_url, tmp_path, "--folder", "shared",
                                     "--set", "max-bytes=1G", "--json")
    assert code == 0, err
    assert json.loads(out)["limits"]["max_bytes"] == 1 << 30
    code, _out, err = await in_thread(quota_command, database_url, tmp_path, "--folder", "shared",
                                      "--set", "upload-per-day=1G")
    assert code != 0 and "a folder has only max-bytes and max-files" in err


@pytest.mark.parametrize(("database_kind", "storage_kind"), [("sqlite", "local"), ("postgresql", "s3")])
async def test_rescan_after_changes_out_of_band(database_url, storage: Storage, quota_servers,
                                                tmp_path: Path) -> None:
    await account_with_quota(database_url, storage, max_bytes=100 * KIB)
    server = await quota_servers()
    ftp = await in_thread(login, server.server_port)
    assert (await in_thread(store, ftp, "a.bin", b"a" * (10 * KIB))).startswith("226")
    await in_thread(ftp.quit)
    assert await usage_of(database_url, (10 * KIB, 1, 0)) == (10 * KIB, 1, 0)
    # behind the gateway's back: one file gone, two new ones (one in a directory)
    await storage.remove("a.bin")
    await storage.put("b.bin", b"b" * (20 * KIB))
    if storage.path is not None:
        (storage.path / "sub").mkdir()
    await storage.put("sub/c.bin", b"c" * (30 * KIB))
    assert await usage_of(database_url, (10 * KIB, 1, 0)) == (10 * KIB, 1, 0)

    config = tmp_path / "gateway.toml"
    lines = ["[storage.options]"]
    for key, value in (storage.options or {}).items():
        lines.append(f"{key} = {json.dumps(value)}")
    config.write_text("\n".join(lines) + "\n")
    code, out, err = await in_thread(quota_cli, database_url, tmp_path, "--rescan", "q",
                                     "-c", str(config))
    assert code == 0, err
    assert f"rescanned {storage.root}: 2 files, {50 * KIB} bytes" in out
    assert await usage_of(database_url, (50 * KIB, 2, 0)) == (50 * KIB, 2, 0)
    # and the quota now counts from there: 50 KiB left
    ftp = await in_thread(login, server.server_port)
    reply = await in_thread(store, ftp, "d.bin", b"d" * (60 * KIB))
    avbl = await in_thread(ftp.sendcmd, "AVBL")
    await in_thread(ftp.quit)
    assert reply.startswith("552 ") and "quota exceeded: max-bytes 100 KiB" in reply
    assert avbl == f"213 {50 * KIB}"
