"""A rename must not carry a subtree away from (or into) a stricter rule below it.

With ``/data`` read/write and ``/data/archive`` read-only, renaming ``/data`` away,
changing ``archive`` where no rule protects it and renaming it back overwrote read-only
files.  A rename is refused (550) when a rule stricter than the one governing the name
exists at or below the source or the target (``gateway.users.stricter_rule_within``).
"""

from __future__ import annotations

import ftplib
import io
from pathlib import Path

import pytest

from .conftest import Permission, User, ftp_login, in_thread, retr_bytes

ORIGINAL = b"the archived report, never to change\n"
FORGED = b"forged\n"


def archive_user(root: Path, *rules: Permission) -> User:
    """``/data`` read/write with read-only ``/data/archive``, everything else read/write."""
    return User(
        base_path=root,
        permissions=rules
        or (
            Permission("/"),
            Permission("/data"),
            Permission("/data/archive", writable=False),
        ),
    )


def send(ftp: ftplib.FTP, line: str) -> str:
    """The reply to one command, errors included (ftplib raises on 4xx/5xx)."""
    try:
        return ftp.sendcmd(line)
    except ftplib.all_errors as exc:
        return str(exc)


def rename(ftp: ftplib.FTP, source: str, target: str) -> list[str]:
    """RNFR then (only when accepted) RNTO; the replies."""
    replies = [send(ftp, "RNFR " + source)]
    if replies[0][:3] == "350":
        replies.append(send(ftp, "RNTO " + target))
    return replies


def stor(ftp: ftplib.FTP, name: str, data: bytes) -> str:
    try:
        return ftp.storbinary("STOR " + name, io.BytesIO(data))
    except ftplib.all_errors as exc:
        return str(exc)


def assert_refused(replies: list[str]) -> None:
    """The pair ended in 550 at RNFR or RNTO: the refusal, not a 250 or a 553."""
    assert replies[-1][:3] == "550", replies
    assert not any(reply[:3] == "250" for reply in replies), replies


@pytest.fixture
def archive(root: Path) -> Path:
    (root / "data" / "archive").mkdir(parents=True)
    report = root / "data" / "archive" / "report.txt"
    report.write_bytes(ORIGINAL)
    (root / "data" / "notes.txt").write_bytes(b"notes")
    return report


# ----------------------------------------------------------------------------- (a) source


async def test_reported_sequence_is_refused_and_archive_kept(
    make_server, root: Path, archive: Path
) -> None:
    server = await make_server((archive_user(root),))

    def attack() -> dict[str, object]:
        ftp = ftp_login(server.server_port)
        try:
            steps: dict[str, object] = {"away": rename(ftp, "/data", "/moved")}
            steps["stor"] = stor(ftp, "/moved/archive/report.txt", FORGED)
            steps["back"] = rename(ftp, "/moved", "/data")
            steps["read"] = retr_bytes(ftp, "/data/archive/report.txt")
            return steps
        finally:
            ftp.close()

    steps = await in_thread(attack)
    assert_refused(steps["away"])  # type: ignore[arg-type]
    assert await in_thread(archive.read_bytes) == ORIGINAL
    assert steps["read"] == ORIGINAL
    assert (root / "data" / "archive").is_dir()
    assert (root / "data" / "notes.txt").read_bytes() == b"notes"
    assert (
        not (root / "moved" / "archive" / "report.txt").exists()
        or (root / "moved" / "archive" / "report.txt").read_bytes() == FORGED
    )  # at most a new file elsewhere, never the archive's


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("/data", "/moved"),  # away to a place with no rules
        ("/data", "/other/deeper/data"),
        ("data", "moved"),  # relative names resolve to the same virtual paths
        ("/data/", "/moved"),
    ],
)
async def test_source_with_stricter_rule_below_is_refused(
    make_server, root: Path, archive: Path, source: str, target: str
) -> None:
    (root / "other" / "deeper").mkdir(parents=True)
    server = await make_server((archive_user(root),))

    def scenario() -> list[str]:
        ftp = ftp_login(server.server_port)
        try:
            return rename(ftp, source, target)
        finally:
            ftp.close()

    assert_refused(await in_thread(scenario))
    assert await in_thread(archive.read_bytes) == ORIGINAL
    assert not (root / "moved").exists()
    assert not (root / "other" / "deeper" / "data").exists()


async def test_unreadable_rule_below_source_is_refused(make_server, root: Path) -> None:
    """Stricter also means "not readable": a hidden subtree must not be renamed into view."""
    (root / "data" / "secret").mkdir(parents=True)
    (root / "data" / "secret" / "key").write_bytes(b"k")
    user = archive_user(
        root,
        Permission("/"),
        Permission("/data"),
        Permission("/data/secret", readable=False, writable=True),
    )
    server = await make_server((user,))

    def scenario() -> list[str]:
        ftp = ftp_login(server.server_port)
        try:
            return rename(ftp, "/data", "/visible")
        finally:
            ftp.close()

    assert_refused(await in_thread(scenario))
    assert (root / "data" / "secret" / "key").read_bytes() == b"k"
    assert not (root / "visible").exists()


# ----------------------------------------------------------------------------- (b) target


async def test_tree_built_elsewhere_cannot_be_renamed_over_a_read_only_rule(
    make_server, root: Path
) -> None:
    """/data does not exist yet, but a read-only /data/archive rule does."""
    server = await make_server((archive_user(root),))

    def build_and_move() -> dict[str, object]:
        ftp = ftp_login(server.server_port)
        try:
            steps: dict[str, object] = {"mkd": send(ftp, "MKD /build/archive")}
            steps["stor"] = stor(ftp, "/build/archive/x.txt", FORGED)
            steps["move"] = rename(ftp, "/build", "/data")
            return steps
        finally:
            ftp.close()

    steps = await in_thread(build_and_move)
    assert str(steps["mkd"])[:3] == "257", steps
    assert str(steps["stor"])[:3] == "226", steps
    assert_refused(steps["move"])  # type: ignore[arg-type]
    assert not (root / "data").exists()
    assert (root / "build" / "archive" / "x.txt").read_bytes() == FORGED


async def test_target_without_own_rule_but_stricter_rule_below(make_server, root: Path) -> None:
    """No rule for /data at all: "/" governs it, and /data/archive is stricter."""
    user = archive_user(root, Permission("/"), Permission("/data/archive", writable=False))
    (root / "build" / "archive").mkdir(parents=True)
    (root / "build" / "archive" / "x.txt").write_bytes(FORGED)
    server = await make_server((user,))

    def scenario() -> list[str]:
        ftp = ftp_login(server.server_port)
        try:
            return rename(ftp, "/build", "/data")
        finally:
            ftp.close()

    assert_refused(await in_thread(scenario))
    assert not (root / "data").exists()


async def test_file_renamed_onto_a_path_with_its_own_read_only_rule_below(
    make_server, root: Path
) -> None:
    """The target's subtree is checked even when the source is a plain file."""
    user = archive_user(
        root, Permission("/"), Permission("/slot"), Permission("/slot/locked", writable=False)
    )
    (root / "plain.txt").write_bytes(b"plain")
    server = await make_server((user,))

    def scenario() -> list[str]:
        ftp = ftp_login(server.server_port)
        try:
            return rename(ftp, "/plain.txt", "/slot")
        finally:
            ftp.close()

    assert_refused(await in_thread(scenario))
    assert (root / "plain.txt").read_bytes() == b"plain"
    assert not (root / "slot").exists()


# ----------------------------------------------------------------------------- refused already


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("/data/archive", "/moved"),  # the read-only directory itself
        ("/data/archive/report.txt", "/data/report.txt"),
        ("/data/notes.txt", "/data/archive/report.txt"),
    ],
)
async def test_rules_governing_the_names_still_refuse(
    make_server, root: Path, archive: Path, source: str, target: str
) -> None:
    server = await make_server((archive_user(root),))

    def scenario() -> list[str]:
        ftp = ftp_login(server.server_port)
        try:
            return rename(ftp, source, target)
        finally:
            ftp.close()

    assert_refused(await in_thread(scenario))
    assert await in_thread(archive.read_bytes) == ORIGINAL


# ----------------------------------------------------------------------------- (c) unaffected


@pytest.mark.parametrize(
    ("source", "target", "expect"),
    [
        ("/data/notes.txt", "/data/notes2.txt", "data/notes2.txt"),  # file, same directory
        ("/data/notes.txt", "/notes.txt", "notes.txt"),  # file out of /data
        ("/loose.txt", "/data/loose.txt", "data/loose.txt"),  # file into /data
        ("/data/work", "/data/work2", "data/work2/w.txt"),  # directory, no rules below
        ("/data/work", "/work", "work/w.txt"),
        ("/tree", "/data/tree", "data/tree/t.txt"),  # directory into /data, beside archive
        ("/data/archive2", "/data/archive3", "data/archive3/a.txt"),  # sibling prefix
        ("/tree", "/data/archive2/tree", "data/archive2/tree/t.txt"),
    ],
)
async def test_renames_without_a_stricter_rule_still_work(
    make_server, root: Path, archive: Path, source: str, target: str, expect: str
) -> None:
    (root / "loose.txt").write_bytes(b"loose")
    (root / "data" / "work").mkdir()
    (root / "data" / "work" / "w.txt").write_bytes(b"w")
    (root / "data" / "archive2").mkdir()
    (root / "data" / "archive2" / "a.txt").write_bytes(b"a")
    (root / "tree").mkdir()
    (root / "tree" / "t.txt").write_bytes(b"t")
    server = await make_server((archive_user(root),))

    def scenario() -> list[str]:
        ftp = ftp_login(server.server_port)
        try:
            return rename(ftp, source, target)
        finally:
            ftp.close()

    replies = await in_thread(scenario)
    assert [reply[:3] for reply in replies] == ["350", "250"], replies
    assert (root / expect).is_file()
    assert await in_thread(archive.read_bytes) == ORIGINAL


async def test_equal_and_looser_rules_below_do_not_block(make_server, root: Path) -> None:
    """Only *stricter* rules block: an equal rule below and a rule exactly at the name don't."""
    user = archive_user(
        root,
        Permission("/"),
        Permission("/data"),
        Permission("/data/same"),  # equal to /data's rule
        Permission("/drop", readable=False),
        Permission("/drop/pub"),  # looser than /drop's rule
    )
    (root / "data" / "same").mkdir(parents=True)
    (root / "data" / "same" / "s.txt").write_bytes(b"s")
    (root / "drop" / "pub").mkdir(parents=True)
    server = await make_server((user,))

    def scenario() -> list[list[str]]:
        ftp = ftp_login(server.server_port)
        try:
            return [
                rename(ftp, "/data", "/data-renamed"),
                rename(ftp, "/data-renamed", "/data"),
                rename(ftp, "/data/same", "/data/same2"),  # the rule is exactly at the name
                rename(ftp, "/drop", "/drop2"),
            ]
        finally:
            ftp.close()

    results = await in_thread(scenario)
    assert [[reply[:3] for reply in replies] for replies in results] == [["350", "250"]] * 4, (
        results
    )
    assert (root / "data" / "same2" / "s.txt").read_bytes() == b"s"
    assert (root / "drop2" / "pub").is_dir()
