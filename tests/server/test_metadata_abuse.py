"""Arguments that used to slip past validation: SITE CHMOD beyond permission bits or on
the root, REST offsets that ``str.isdigit`` accepts but ``int`` does not, and MFMT
times the filesystem silently stores as another year.  Each reply is our own sentence
(501/550), and nothing on disk changes."""

from __future__ import annotations

import calendar
import os
import stat
from pathlib import Path

import pytest


async def test_site_chmod_sets_permission_bits_only(server, raw, root: Path) -> None:
    target = root / "f.txt"
    target.write_bytes(b"x")
    target.chmod(0o644)
    client = await raw(server)
    for mode in ("6777", "4755", "2755", "1777", "7000"):
        reply = await client.expect(f"SITE CHMOD {mode} f.txt", "501")
        assert "permission bits" in reply.text, reply
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # no setuid, setgid or sticky bit
    await client.expect("SITE CHMOD 0777 f.txt", "200")
    assert stat.S_IMODE(target.stat().st_mode) == 0o777
    await client.expect("SITE CHMOD 0 f.txt", "200")
    assert stat.S_IMODE(target.stat().st_mode) == 0


async def test_site_chmod_never_on_the_root(server, raw, root: Path) -> None:
    before = stat.S_IMODE(os.stat(root).st_mode)
    client = await raw(server)
    for argument in ("/", ".", "..", "/../.."):
        reply = await client.expect(f"SITE CHMOD 0 {argument}", "550")
        assert "root" in reply.text, reply
    await client.expect("MKD sub", "257")
    await client.expect("CWD sub", "250")
    await client.expect("SITE CHMOD 000 ..", "550")
    assert stat.S_IMODE(os.stat(root).st_mode) == before
    await client.expect("SITE CHMOD 700 /sub", "200")
    assert stat.S_IMODE((root / "sub").stat().st_mode) == 0o700


@pytest.mark.parametrize(
    "argument",
    ["²", "¹²", "٣", "３", "1²", "-1", "+1", "1.5", "0x10", "1 2", "9" * 20, "9" * 4000,
     str(2**63)],
)  # fmt: skip
async def test_rest_refuses_what_is_not_an_ascii_offset(server, raw, argument: str) -> None:
    client = await raw(server)
    reply = await client.expect(f"REST {argument}", "501")
    assert reply.text == "REST needs a byte offset in ASCII digits, at most 2**63-1", reply
    await client.expect("NOOP", "200")


async def test_rest_accepts_the_largest_offset(server, raw) -> None:
    client = await raw(server)
    reply = await client.expect(f"REST {2**63 - 1}", "350")
    assert str(2**63 - 1) in reply.text
    await client.expect("REST 0", "350")


@pytest.mark.parametrize("stamp", ["99991231235959", "30000101000000", "25000101000000"])
async def test_mfmt_refuses_a_time_the_filesystem_would_change(server, raw, root: Path, stamp: str) -> None:
    target = root / "f.txt"
    target.write_bytes(b"x")
    os.utime(target, (1_000_000_000, 1_000_000_000))
    client = await raw(server)
    expected = calendar.timegm((int(stamp[:4]), int(stamp[4:6]), int(stamp[6:8]), 0, 0, 0))
    reply = await client.cmd(f"MFMT {stamp} f.txt")
    mtime = target.stat().st_mtime
    if reply.code == "213":
        # a filesystem that keeps this year: success must mean it was stored
        assert mtime == expected + (int(stamp[8:10]) * 3600 + int(stamp[10:12]) * 60 + int(stamp[12:14]))
    else:
        assert reply.code == "501", reply
        assert "cannot keep that time" in reply.text, reply
        assert mtime == 1_000_000_000  # the old time is back


async def test_mfmt_9999_on_ext4_like_storage_is_not_a_false_success(server, raw, root: Path) -> None:
    """Year 9999 is beyond what ext4, XFS and tmpfs store (at most 2446 or 2486)."""
    target = root / "f.txt"
    target.write_bytes(b"x")
    os.utime(target, (1_000_000_000, 1_000_000_000))
    client = await raw(server)
    reply = await client.expect("MFMT 99991231235959 f.txt", "501")
    assert reply.text == "MFMT: this storage cannot keep that time; the file's time is unchanged"
    assert target.stat().st_mtime == 1_000_000_000
    await client.expect("SITE UTIME 99991231235959 f.txt", "501")
    assert target.stat().st_mtime == 1_000_000_000


async def test_mfmt_before_1970_and_after_9999_are_refused(server, raw, root: Path) -> None:
    target = root / "f.txt"
    target.write_bytes(b"x")
    os.utime(target, (1_000_000_000, 1_000_000_000))
    client = await raw(server)
    for stamp in ("19691231235959", "00010101000000", "99991231235960"):
        reply = await client.expect(f"MFMT {stamp} f.txt", "501")
        assert reply.text == "MFMT takes a time from 1970 to 9999", reply
    assert target.stat().st_mtime == 1_000_000_000
    # the edges that every filesystem keeps still work
    await client.expect("MFMT 19700101000000 f.txt", "213")
    assert target.stat().st_mtime == 0
    await client.expect("MFMT 20380119031407 f.txt", "213")
    assert target.stat().st_mtime == 2**31 - 1
