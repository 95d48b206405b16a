"""Quotas of accounts that carry their limits (the library's ``User``, the
configuration's ``[[users.static]]``): usage counted in the server process."""

from __future__ import annotations

import ftplib
import os
from pathlib import Path

import pytest

import gateway
from gateway import User
from gateway.config import ConfigError, load_settings
from gateway.service.build import static_user
from gateway.users.quotas import Quota

from .conftest import HOST, KIB, fetch, in_thread, store

HASH = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$8z9Ghm3c3ZQb6FLRMJxkHQ"


def session(port: int) -> ftplib.FTP:
    ftp = ftplib.FTP(timeout=30)
    ftp.connect(HOST, port)
    ftp.login("m", "pw")
    return ftp


async def test_memory_quota_counts_existing_files_then_every_change(tmp_path: Path) -> None:
    (tmp_path / "old.bin").write_bytes(b"o" * (30 * KIB))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "older.bin").write_bytes(b"o" * (10 * KIB))
    user = User("m", "pw", base_path=tmp_path, max_bytes=100 * KIB, download_per_day=50 * KIB)
    server = gateway.Server([user])
    await server.start(HOST, 0)
    try:
        ftp = await in_thread(session, server.server_port)
        first = await in_thread(ftp.sendcmd, "AVBL")  # what was there is counted first
        stored = await in_thread(store, ftp, "a.bin", b"a" * (50 * KIB))
        cut = await in_thread(store, ftp, "b.bin", b"b" * (20 * KIB))
        await in_thread(ftp.delete, "old.bin")
        after_delete = await in_thread(ftp.sendcmd, "AVBL")
        got = await in_thread(fetch, ftp, "a.bin")
        refused = await in_thread(fetch, ftp, "sub/older.bin")
        report = await in_thread(ftp.sendcmd, "SITE QUOTA")
        await in_thread(ftp.quit)
    finally:
        await server.close()
    assert first == f"213 {60 * KIB}"
    assert stored.startswith("226")
    assert cut.startswith("552 ") and "quota exceeded: max-bytes 100 KiB" in cut
    assert after_delete == f"213 {40 * KIB}"
    assert got == ("226 transfer complete", b"a" * (50 * KIB))
    assert refused[0].startswith("552 ") and "quota exceeded: download-per-day 50 KiB" in refused[0]
    assert "bytes: 60 KiB used of 100 KiB (max-bytes), 40 KiB left" in report
    assert "download today: 50 KiB used of 50 KiB (download-per-day), 0 bytes left" in report
    assert "usage counted by this server process" in report
    assert sorted(os.listdir(tmp_path)) == ["a.bin", "sub"]


def test_static_users_take_quotas(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(f"""
[storage]
root = "{tmp_path / 'files'}"

[[users.static]]
login = "camera1"
password_hash = "{HASH}"
max_bytes = "10GiB"
max_files = 1000
upload_per_day = "1GiB"
download_per_month = 0
""")
    settings = load_settings(config, env={})
    user = static_user(settings, settings.users.static[0])
    assert user.quota == Quota(max_bytes=10 << 30, max_files=1000, upload_per_day=1 << 30)
    config.write_text(config.read_text().replace('max_files = 1000', 'max_files = "many"'))
    with pytest.raises(ConfigError, match="max_files"):
        load_settings(config, env={})


def test_user_keeps_aioftp_signature_and_checks_quota_values() -> None:
    plain = User("a", "b")
    assert plain.quota == Quota() and not plain.quota.active
    assert "max_bytes" not in repr(plain)
    assert "max_bytes=5" in repr(User("a", "b", max_bytes=5))
    with pytest.raises(ValueError, match="max-files"):
        User("a", "b", max_files=-1)
