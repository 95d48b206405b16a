"""``gateway serve --repair``: what killed uploads left is cleaned up on demand, each
action printed, failures as one line each."""

from __future__ import annotations

import os
import time
from pathlib import Path

from backends.local import partial_name
from tests.backends.test_recovery import crash_mid_write

from .conftest import HOST, base_env, run_cli

ORIGINAL = b"kept\n" * 1000


def _config(tmp_path: Path) -> tuple[Path, Path]:
    files = tmp_path / "files"
    config = tmp_path / "gateway.toml"
    config.write_text(f"""
[[listeners]]
host = "{HOST}"
port = 0

[storage]
root = "{files}"

[[users.static]]
login = "anonymous"
permissions = ["/:rw"]

[[users.static]]
login = "bob"
root = "memory://bob"
password_hash = "$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ$AAAAAAAAAAAAAAAAAAAAAA"
""")
    root = files / "anonymous"
    (root / "sub").mkdir(parents=True, exist_ok=True)
    return config, root


def test_repair_prints_what_it_did(tmp_path: Path) -> None:
    config, root = _config(tmp_path)
    stale = root / "sub" / partial_name("report.pdf")
    stale.write_bytes(b"half an upload")
    then = time.time() - 7200
    os.utime(stale, (then, then))
    fresh = root / partial_name("running.bin")
    fresh.write_bytes(b"maybe still being written by another node")
    (root / "log").write_bytes(ORIGINAL)
    crash_mid_write(root / "log", "ab", os.urandom(100_000))

    done = run_cli("serve", "-c", str(config), "--repair", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "clean-up of upload temporaries left by stopped uploads (untouched for over 1 h)"
    [summary] = [line for line in lines if line.startswith("ok    temporaries in /")]
    assert summary.startswith(f"ok    temporaries in {tmp_path / 'files'}: ")
    for part in ("1 removed", "1 restored", "1 in use or recent, kept"):
        assert part in summary
    assert any(line.startswith(f"      removed {stale}: partial upload, 14 bytes") for line in lines)
    assert any(line.startswith("      restored ") and "log back to its 5000 bytes" in line
               for line in lines)
    assert "ok    temporaries in memory://bob: nothing to do" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    assert not stale.exists() and fresh.exists()
    assert (root / "log").read_bytes() == ORIGINAL

    again = run_cli("serve", "-c", str(config), "--repair", cwd=tmp_path,
                    env=base_env(GATEWAY_STORAGE_STALE_TEMPORARY_AGE="0"))
    assert again.returncode == 0
    assert not fresh.exists()
    assert f"      removed {fresh}: partial upload" in again.stdout


def test_repair_failures_are_one_line_each(tmp_path: Path) -> None:
    _, root = _config(tmp_path)
    done = run_cli("serve", "--repair", "--root", str(root.parent),
                   "--database-url", "postgresql://nobody@127.0.0.1:9/none", cwd=tmp_path)
    assert done.returncode == 1
    assert "FAIL  accounts database: " in done.stdout
    assert f"ok    temporaries in {root.parent}: nothing to do" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr

    config, _ = _config(tmp_path)
    bad = run_cli("serve", "-c", str(config), "--repair", "--root", "s3://", cwd=tmp_path)
    assert bad.returncode == 1
    assert "FAIL  temporaries in s3://: ValueError: an s3:// root needs a bucket name" in bad.stdout
    assert "Traceback" not in bad.stdout + bad.stderr

def test_repair_covers_the_folders_roots(tmp_path: Path) -> None:
    """A folder's root outside every account's root is cleaned up too."""
    config, _root = _config(tmp_path)
    archive = tmp_path / "archive"
    archive.mkdir()
    config.write_text(config.read_text() + f"""
[[folders]]
name = "archive"
root = "{archive}"
""")
    stale = archive / partial_name("scan.tif")
    stale.write_bytes(b"half a scan")
    then = time.time() - 7200
    os.utime(stale, (then, then))

    done = run_cli("serve", "-c", str(config), "--repair", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"ok    temporaries in {archive}: 1 removed" in done.stdout
    assert not stale.exists()
