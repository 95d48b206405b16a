"""Recovery of upload temporaries on local disk after a crash (``backends.recovery``).

Crashes are real: a child process opens a file through ``PathIO``, writes, and kills
itself with SIGKILL mid-write, so what it leaves is exactly what a killed server leaves.
Ages are set with ``os.utime``, never waited for.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from backends import undo
from backends.local import PathIO, partial_name
from backends.recovery import LocalRecovery, recover_root, recovery_for_root
from backends.recovery import local as recovery_local

REPO = Path(__file__).resolve().parents[2]
HOUR = 3600.0
ORIGINAL = b"the previous content, kept whole\n" * 200
NEW = os.urandom(256 * 1024)


def age(path: Path, seconds: float = 2 * HOUR) -> None:
    """Make ``path`` look untouched for ``seconds`` (without following a link)."""
    then = time.time() - seconds
    os.utime(path, (then, then), follow_symlinks=False)


def temporaries(directory: Path) -> list[str]:
    return sorted(n for n in os.listdir(directory) if ".gateway-" in n)


def crash_mid_write(path: Path, mode: str, data: bytes, offset: int = 0) -> None:
    """A child writes ``data`` to ``path`` (``mode``; at ``offset`` after REST) through
    ``PathIO`` and is killed with SIGKILL before it can commit or roll back."""
    script = textwrap.dedent(f"""
        import asyncio, os, signal, sys
        from pathlib import Path
        from backends.local import PathIO

        async def main():
            pio = PathIO()
            f = await pio.open(Path({str(path)!r}), {mode!r})
            if {offset}:
                await f.seek({offset})
            data = sys.stdin.buffer.read()
            half = len(data) // 2
            await f.write(data[:half])
            await f.write(data[half:])
            os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, input=data,
                          capture_output=True, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()


async def recover(root: Path, max_age: float = HOUR, **kwargs: object):
    report = await recover_root(str(root), max_age, **kwargs)  # type: ignore[arg-type]
    assert report is not None and report.done
    return report


# -- partial uploads ------------------------------------------------------------------


async def test_stale_partial_is_removed_and_a_fresh_one_kept(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    stale = tmp_path / "sub" / partial_name("report.pdf")
    fresh = tmp_path / partial_name("other.bin")
    stale.write_bytes(b"half an upload")
    fresh.write_bytes(b"an upload still running elsewhere")
    age(stale)
    report = await recover(tmp_path)
    assert not stale.exists()
    assert fresh.exists()
    assert [a.kind for a in report.actions] == ["removed"]
    assert report.actions[0].where == str(stale)
    assert report.kept == 1


async def test_partial_of_a_killed_upload_is_removed(tmp_path: Path) -> None:
    (tmp_path / "f.bin").write_bytes(ORIGINAL)
    crash_mid_write(tmp_path / "f.bin", "wb", NEW)
    [partial] = temporaries(tmp_path)
    assert ".gateway-partial-" in partial
    assert (tmp_path / "f.bin").read_bytes() == ORIGINAL
    await recover(tmp_path, max_age=0)
    assert os.listdir(tmp_path) == ["f.bin"]
    assert (tmp_path / "f.bin").read_bytes() == ORIGINAL


async def test_partial_of_a_running_upload_is_never_touched(tmp_path: Path) -> None:
    """Its writer holds a lock on it: even an age of 0 leaves it alone."""
    pio = PathIO()
    f = await pio.open(tmp_path / "live.bin", "wb")
    await f.write(b"x" * 1000)
    [partial] = temporaries(tmp_path)
    age(tmp_path / partial)
    report = await recover(tmp_path, max_age=0)
    assert temporaries(tmp_path) == [partial]
    assert report.actions == [] and report.kept == 1
    await f.write(b"y" * 1000)
    await f.close()
    assert (tmp_path / "live.bin").read_bytes() == b"x" * 1000 + b"y" * 1000


async def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    stale = tmp_path / partial_name("a")
    stale.write_bytes(b"x")
    age(stale)
    report = await recover(tmp_path, dry_run=True)
    assert stale.exists()
    assert [a.kind for a in report.actions] == ["would remove"]


# -- undo journals: an append or resume cut off ----------------------------------------


async def test_killed_append_gets_the_previous_content_back(tmp_path: Path) -> None:
    target = tmp_path / "log"
    target.write_bytes(ORIGINAL)
    crash_mid_write(target, "ab", NEW)
    [journal] = temporaries(tmp_path)
    assert ".gateway-undo-" in journal
    assert target.read_bytes() == ORIGINAL + NEW  # what the kill left: half-written
    # written on this machine by a process that is gone: restored without waiting
    report = await recover(tmp_path, max_age=HOUR)
    assert target.read_bytes() == ORIGINAL
    assert os.listdir(tmp_path) == ["log"]
    [action] = report.actions
    assert action.kind == "restored" and "writer on this machine is gone" in action.detail


@pytest.mark.parametrize("offset", [10, len(ORIGINAL) - 100, len(ORIGINAL)])
async def test_killed_resume_gets_the_previous_content_back(tmp_path: Path, offset: int) -> None:
    """REST + STOR inside the file (old bytes overwritten), near its end, at its end."""
    target = tmp_path / "f"
    target.write_bytes(ORIGINAL)
    crash_mid_write(target, "r+b", NEW, offset=offset)
    assert target.read_bytes() == ORIGINAL[:offset] + NEW
    await recover(tmp_path)
    assert target.read_bytes() == ORIGINAL
    assert os.listdir(tmp_path) == ["f"]


async def test_a_journal_from_another_machine_waits_for_the_age(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another node may still be writing: its lock may not be visible from here."""
    target = tmp_path / "log"
    target.write_bytes(ORIGINAL)
    crash_mid_write(target, "ab", NEW)
    [journal] = temporaries(tmp_path)
    monkeypatch.setattr(recovery_local, "host_identity", lambda: ("elsewhere", "another-boot"))
    report = await recover(tmp_path, max_age=HOUR)
    assert report.actions == [] and report.kept == 1
    assert target.read_bytes() == ORIGINAL + NEW
    age(tmp_path / journal)
    await recover(tmp_path, max_age=HOUR)
    assert target.read_bytes() == ORIGINAL + NEW  # the file changed recently: kept
    age(target)
    report = await recover(tmp_path, max_age=HOUR)
    assert target.read_bytes() == ORIGINAL
    assert "untouched for over 1 h" in report.actions[0].detail
    assert os.listdir(tmp_path) == ["log"]


async def test_journal_of_a_running_append_is_never_touched(tmp_path: Path) -> None:
    target = tmp_path / "log"
    target.write_bytes(ORIGINAL)
    pio = PathIO()
    f = await pio.open(target, "ab")
    await f.write(NEW)
    [journal] = temporaries(tmp_path)
    age(tmp_path / journal)
    age(target)
    report = await recover(tmp_path, max_age=0)
    assert report.actions == [] and report.kept == 1
    await f.close()
    assert target.read_bytes() == ORIGINAL + NEW
    assert os.listdir(tmp_path) == ["log"]


async def test_journal_of_a_file_replaced_since_is_dropped(tmp_path: Path) -> None:
    target = tmp_path / "log"
    target.write_bytes(ORIGINAL)
    crash_mid_write(target, "ab", NEW)
    replacement = tmp_path / "new"
    replacement.write_bytes(b"a later upload, complete")
    os.replace(replacement, target)
    report = await recover(tmp_path)
    assert target.read_bytes() == b"a later upload, complete"
    assert os.listdir(tmp_path) == ["log"]
    assert "replaced since" in report.actions[0].detail


async def test_journal_of_a_deleted_file_is_dropped(tmp_path: Path) -> None:
    target = tmp_path / "log"
    target.write_bytes(ORIGINAL)
    crash_mid_write(target, "ab", NEW)
    target.unlink()
    await recover(tmp_path)
    assert os.listdir(tmp_path) == []


async def test_an_interrupted_restore_is_done_again(tmp_path: Path) -> None:
    """Recovery itself may be cut off: the journal stays until the file is whole."""
    target = tmp_path / "f"
    target.write_bytes(ORIGINAL)
    crash_mid_write(target, "r+b", NEW, offset=100)
    # half a restore: the first old bytes are back, the size is not
    fd = os.open(target, os.O_WRONLY)
    try:
        os.pwrite(fd, ORIGINAL[100:200], 100)
    finally:
        os.close(fd)
    assert temporaries(tmp_path)
    await recover(tmp_path)
    assert target.read_bytes() == ORIGINAL
    assert (await recover(tmp_path)).actions == []


async def test_a_journal_this_version_did_not_write_is_left(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(ORIGINAL)
    legacy = tmp_path / partial_name("f", ".gateway-undo-")
    legacy.write_bytes((5).to_bytes(8, "big") + (3).to_bytes(8, "big") + b"old")
    age(legacy)
    report = await recover(tmp_path, max_age=0)
    assert legacy.exists() and (tmp_path / "f").read_bytes() == ORIGINAL
    assert [a.kind for a in report.actions] == ["left"]


async def test_writer_journal_header_and_lock(tmp_path: Path) -> None:
    """While an append runs its journal names the file and its size, and is locked."""
    target = tmp_path / "log"
    target.write_bytes(ORIGINAL)
    pio = PathIO()
    f = await pio.open(target, "ab")
    await f.write(b"more")
    [journal] = temporaries(tmp_path)
    fd = os.open(tmp_path / journal, os.O_RDONLY)
    try:
        parsed = undo.read_header(fd)
        assert parsed is not None
        header = parsed[0]
        assert (header.size, header.name, header.inode) == (
            len(ORIGINAL), b"log", target.stat().st_ino)
        assert undo.try_lock(fd) is False
    finally:
        os.close(fd)
    await f.close()
    assert os.listdir(tmp_path) == ["log"]


# -- what is never touched ------------------------------------------------------------


async def test_names_that_only_look_like_temporaries_are_untouched(tmp_path: Path) -> None:
    hexes = "0123456789ab"
    names = [
        f"x.gateway-partial-{hexes}",  # no leading dot
        f".x.gateway-partial-{hexes.upper()}",  # not lowercase hex
        f".x.gateway-partial-{hexes[:-1]}",  # 11 digits
        f".x.gateway-partial-{hexes}0",  # 13 digits
        f".x.gateway-partial-{hexes}.txt",  # something after
        f".x.gateway-partials-{hexes}",
        f".x.gateway-undo-{hexes[:6]}zzzzzz",
        f".x-gateway-partial-{hexes}",  # "-" where the mark has "."
        f".x.gateway-temp-{hexes}",
        "." + "a" * 201 + f".gateway-partial-{hexes}",  # longer than any name we make
        f".x.GATEWAY-partial-{hexes}",
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"not ours")
        age(tmp_path / name)
    directory = tmp_path / f".d.gateway-partial-{hexes}"
    directory.mkdir()
    age(directory)
    report = await recover(tmp_path, max_age=0)
    assert report.actions == []
    assert sorted(os.listdir(tmp_path)) == sorted([*names, directory.name])


async def test_symlinks_are_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    victim = outside / partial_name("precious")
    victim.write_bytes(b"not under the root")
    age(victim)
    (root / "escape").symlink_to(outside, target_is_directory=True)
    link = root / partial_name("link")
    link.symlink_to(victim)
    age(link)
    report = await recover(root, max_age=0)
    assert victim.exists() and link.is_symlink()
    assert report.actions == []


async def test_a_journal_whose_file_became_a_symlink_is_left(tmp_path: Path) -> None:
    target = tmp_path / "log"
    target.write_bytes(ORIGINAL)
    crash_mid_write(target, "ab", NEW)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(b"must stay as it is")
    target.unlink()
    target.symlink_to(elsewhere)
    report = await recover(tmp_path)
    assert elsewhere.read_bytes() == b"must stay as it is"
    assert [a.kind for a in report.actions] == ["left"]


async def test_the_root_may_be_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    stale = real / partial_name("a")
    stale.write_bytes(b"x")
    age(stale)
    (tmp_path / "root").symlink_to(real, target_is_directory=True)
    await recover(tmp_path / "root")
    assert not stale.exists()


# -- bounded, resumable, every backend ------------------------------------------------


async def test_the_walk_is_bounded(tmp_path: Path) -> None:
    for i in range(20):
        (tmp_path / f"d{i}").mkdir()
    report = await recover(tmp_path, max_entries=5)
    assert report.truncated and report.examined == 6
    assert "stopped after 5 entries" in report.errors[0]


async def test_the_walk_resumes_after_a_deadline(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    stale = tmp_path / "a" / "b" / partial_name("x")
    stale.write_bytes(b"x")
    age(stale)
    recovery = LocalRecovery(tmp_path, HOUR)
    assert await recovery.run(deadline=time.monotonic() - 1) is False
    assert stale.exists()
    assert await recovery.run() is True
    assert not stale.exists()


async def test_missing_root_and_other_backends(tmp_path: Path) -> None:
    report = await recover(tmp_path / "not-yet")
    assert report.actions == [] and report.errors == []
    memory = recovery_for_root("memory://", HOUR)
    assert memory is not None and await memory.run()
    assert recovery_for_root("fsspec+memory://x", HOUR) is None
    assert recovery_for_root("gcs://bucket/x", HOUR) is None
