"""LIST / MLSx / NLST / MDTM formatting from stat results."""

from __future__ import annotations

import calendar
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.protocol.listing import (
    SIX_MONTHS,
    format_list_line,
    format_mdtm,
    format_mlsx_line,
    format_nlst_line,
    mlsx_perm,
    parse_mdtm,
    strip_list_flags,
)

NOW = calendar.timegm((2024, 6, 15, 12, 0, 0))


def make_stat(
    mode: int = stat.S_IFREG | 0o644,
    size: int = 123,
    mtime: float = NOW - 3600,
    **extra: int,
) -> SimpleNamespace:
    return SimpleNamespace(st_mode=mode, st_size=size, st_mtime=mtime, **extra)


def test_list_line_recent_file() -> None:
    st_ = make_stat(st_nlink=1, mtime=calendar.timegm((2024, 6, 5, 9, 7, 0)))
    assert format_list_line("a.txt", st_, now=NOW) == (
        "-rw-r--r--   1 ftp ftp          123 Jun  5 09:07 a.txt"
    )


def test_list_line_old_dir_shows_year() -> None:
    st_ = make_stat(stat.S_IFDIR | 0o755, 4096, calendar.timegm((2020, 12, 25, 0, 0, 0)))
    line = format_list_line("dir", st_, now=NOW)
    assert line == "drwxr-xr-x   1 ftp ftp         4096 Dec 25  2020 dir"


def test_list_line_far_future_shows_year() -> None:
    line = format_list_line("f", make_stat(mtime=NOW + 86400 * 30), now=NOW)
    assert line.endswith("Jul 15  2024 f")
    # slight clock skew still counts as recent
    line = format_list_line("f", make_stat(mtime=NOW + 60), now=NOW)
    assert line.endswith("Jun 15 12:01 f")


def test_list_line_six_month_boundary() -> None:
    inside = format_list_line("f", make_stat(mtime=NOW - SIX_MONTHS + 60), now=NOW)
    outside = format_list_line("f", make_stat(mtime=NOW - SIX_MONTHS - 60), now=NOW)
    assert ":" in inside.split()[7]
    assert outside.split()[7] == "2023"


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (stat.S_IFREG | 0o000, "----------"),
        (stat.S_IFREG | 0o777, "-rwxrwxrwx"),
        (stat.S_IFDIR | 0o1777, "drwxrwxrwt"),
        (stat.S_IFDIR | 0o1776, "drwxrwxrwT"),
        (stat.S_IFREG | 0o4755, "-rwsr-xr-x"),
        (stat.S_IFREG | 0o2644, "-rw-r-Sr--"),
        (stat.S_IFLNK | 0o777, "lrwxrwxrwx"),
        (stat.S_IFIFO | 0o600, "prw-------"),
        (0o644, "-rw-r--r--"),
    ],
)
def test_list_line_mode_string(mode: int, expected: str) -> None:
    assert format_list_line("x", make_stat(mode), now=NOW).split()[0] == expected
    assert stat.filemode(mode if stat.S_IFMT(mode) else mode | stat.S_IFREG) == expected


@given(st.integers(0, 0o177777))
def test_mode_string_matches_stdlib(mode: int) -> None:
    if stat.S_IFMT(mode) not in (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK, stat.S_IFIFO,
                                 stat.S_IFSOCK, stat.S_IFCHR, stat.S_IFBLK):  # fmt: skip
        mode = stat.S_IFREG | (mode & 0o7777)
    assert format_list_line("x", make_stat(mode), now=NOW).split()[0] == stat.filemode(mode)


ENGLISH_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun",
                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]  # fmt: skip


def test_month_names_come_from_a_fixed_english_table() -> None:
    """Every month, in both date forms, is the English abbreviation clients parse,
    whatever ``strftime("%b")`` would say in the current locale."""
    for month, name in enumerate(ENGLISH_MONTHS, start=1):
        recent_now = calendar.timegm((2024, month, 20, 0, 0, 0))
        recent = format_list_line(
            "f", make_stat(mtime=calendar.timegm((2024, month, 9, 7, 5, 0))), now=recent_now
        )
        assert f" {name}  9 07:05 f" in recent, recent
        old = format_list_line("f", make_stat(mtime=calendar.timegm((2001, month, 9, 7, 5, 0))), now=NOW)
        assert f" {name}  9  2001 f" in old, old


#: Formats LIST lines in a child process under a German LC_ALL; prints what strftime
#: makes of May (to prove the locale is really in force) and then the two lines.
_CHILD = """
import calendar, locale, time
from types import SimpleNamespace
from gateway.protocol.listing import format_list_line
print(locale.setlocale(locale.LC_ALL, ""))
may = calendar.timegm((2024, 5, 1, 0, 0, 0))
print(time.strftime("%b", time.gmtime(may)))
st = SimpleNamespace(st_mode=0o100644, st_size=1, st_mtime=may)
print(format_list_line("f", st, now=may + 86400))
st.st_mtime = calendar.timegm((2001, 12, 24, 0, 0, 0))
print(format_list_line("f", st, now=may))
"""


@pytest.fixture(scope="session")
def german_locale(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A de_DE.UTF-8 locale compiled into a private directory (``LOCPATH``), so the
    test needs no system-wide locale: machines often have only C and POSIX."""
    localedef = shutil.which("localedef")
    if localedef is None:
        pytest.fail("localedef (libc-bin) is needed to build a test locale", pytrace=False)
    path = tmp_path_factory.mktemp("locales")
    proc = subprocess.run(
        [localedef, "-i", "de_DE", "-f", "UTF-8", str(path / "de_DE.UTF-8")],
        capture_output=True, text=True, timeout=60,
    )
    if not (path / "de_DE.UTF-8" / "LC_TIME").exists():
        pytest.fail(
            "could not build de_DE.UTF-8 (install Debian's `locales` package: "
            f"scripts/install-test-deps.sh): {proc.stderr[-2000:]}",
            pytrace=False,
        )
    return path


def test_list_line_ignores_the_process_locale(german_locale: Path) -> None:
    env = dict(os.environ, LOCPATH=str(german_locale), LC_ALL="de_DE.UTF-8")
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD], capture_output=True, text=True, env=env,
        timeout=60, check=True, cwd=Path(__file__).resolve().parents[2],
    )
    chosen, strftime_may, recent, old = proc.stdout.splitlines()
    assert chosen == "de_DE.UTF-8"
    assert strftime_may == "Mai"  # the locale is in force: %b would have said "Mai"
    assert recent.endswith(" May  1 00:00 f"), recent
    assert old.endswith(" Dec 24  2001 f"), old  # not "Dez"


def test_list_line_real_stat() -> None:
    st_ = os.stat(__file__)
    line = format_list_line("test_listing.py", st_, now=st_.st_mtime)
    fields = line.split(None, 8)
    assert fields[0][0] == "-"
    assert int(fields[4]) == st_.st_size
    assert fields[8] == "test_listing.py"


def test_list_line_names_with_spaces_and_newlines() -> None:
    assert format_list_line(" a b ", make_stat(), now=NOW).endswith(":00  a b ")
    line = format_list_line("evil\r\n-rw-r--r-- 1 x x 1 Jan 1 2020 fake", make_stat(), now=NOW)
    assert "\n" not in line and "\r" not in line


def test_list_line_missing_nlink_defaults_to_one() -> None:
    assert format_list_line("f", make_stat(), now=NOW).split()[1] == "1"


@given(
    name=st.text(min_size=1, max_size=40),
    size=st.integers(0, 2**63),
    mtime=st.floats(-(2**40), 2**40, allow_nan=False),
)
def test_list_line_fuzz(name: str, size: int, mtime: float) -> None:
    line = format_list_line(name, make_stat(size=size, mtime=mtime), now=NOW)
    assert "\n" not in line and "\r" not in line
    fields = line.split(" ")
    assert fields[0] == "-rw-r--r--"
    assert str(size) in line


def test_mlsx_line_file() -> None:
    st_ = make_stat(
        size=123, mtime=calendar.timegm((2024, 1, 1, 12, 0, 0)), st_dev=0x10, st_ino=0xAB
    )
    assert format_mlsx_line("a.txt", st_, perm="rwadf") == (
        "type=file;size=123;modify=20240101120000;perm=rwadf;unique=10gab; a.txt"
    )


def test_mlsx_line_dir_without_perm() -> None:
    st_ = make_stat(stat.S_IFDIR | 0o755, 0, calendar.timegm((2024, 1, 1, 0, 0, 0)))
    line = format_mlsx_line("sub dir", st_)
    assert line.startswith("type=dir;size=0;modify=20240101000000;unique=")
    assert "perm=" not in line
    assert line.endswith("; sub dir")


def test_mlsx_unique_without_inode_is_stable_and_name_based() -> None:
    a = format_mlsx_line("a", make_stat(), facts=("unique",))
    assert a == format_mlsx_line("a", make_stat(), facts=("unique",))
    assert a != format_mlsx_line("b", make_stat(), facts=("unique",))
    keyed = format_mlsx_line("a", make_stat(), facts=("unique",), unique_key="/x/a")
    assert keyed != a and keyed.endswith("; a")


def test_mlsx_selected_facts() -> None:
    st_ = make_stat(size=5, mtime=0)
    assert format_mlsx_line("f", st_, facts=("size", "type")) == "size=5;type=file; f"
    assert format_mlsx_line("f", st_, facts=()) == " f"
    assert format_mlsx_line("f", st_, facts=("modify",)) == "modify=19700101000000; f"


@given(st.text(max_size=40))
def test_mlsx_fuzz_name_is_last_and_single_line(name: str) -> None:
    line = format_mlsx_line(name, make_stat(), perm="r")
    assert "\r" not in line and "\n" not in line
    facts, sep, shown = line.partition("; ")
    assert sep
    assert len(shown) == len(name)


@pytest.mark.parametrize(
    ("is_dir", "readable", "writable", "expected"),
    [
        (False, True, True, "rwadf"),
        (False, True, False, "r"),
        (False, False, True, "wadf"),
        (False, False, False, ""),
        (True, True, True, "elcmpdf"),
        (True, True, False, "el"),
        (True, False, True, "cmpdf"),
        (True, False, False, ""),
    ],
)
def test_mlsx_perm(is_dir: bool, readable: bool, writable: bool, expected: str) -> None:
    assert mlsx_perm(is_dir, readable, writable) == expected


def test_format_mdtm() -> None:
    assert format_mdtm(0) == "19700101000000"
    assert format_mdtm(calendar.timegm((2024, 2, 29, 23, 59, 59)) + 0.999) == "20240229235959"
    assert format_mdtm(-86400 * 365 * 1000).startswith("0")  # year < 1000 padded
    assert len(format_mdtm(1e300)) == 14  # absurd stat does not break a listing


@given(st.integers(0, 253402300799))  # up to 9999-12-31 23:59:59
def test_mdtm_round_trip(ts: int) -> None:
    text = format_mdtm(ts)
    assert len(text) == 14 and text.isdigit()
    assert parse_mdtm(text) == ts


def test_parse_mdtm() -> None:
    assert parse_mdtm("19700101000000") == 0
    assert parse_mdtm("20240101120000.5") == calendar.timegm((2024, 1, 1, 12, 0, 0)) + 0.5
    assert parse_mdtm("20161231235960") == calendar.timegm((2017, 1, 1, 0, 0, 0))


@pytest.mark.parametrize(
    "bad",
    ["", "2024", "2024010112000", "202401011200000", "20241301120000", "20240230120000",
     "20240101250000", "2024010112000x", "20240101120000.", "20240101120000.x",
     "-2024010112000", "２０２４０１０１１２００００", "00000101000000", " 20240101120000"],
)  # fmt: skip
def test_parse_mdtm_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_mdtm(bad)


@given(st.text(max_size=30))
def test_parse_mdtm_only_value_error(text: str) -> None:
    try:
        parse_mdtm(text)
    except ValueError:
        pass


def test_nlst_line() -> None:
    assert format_nlst_line(" a ") == " a "
    assert "\n" not in format_nlst_line("a\nb")


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("", ""),
        ("-la", ""),
        ("-l -a", ""),
        ("-la /pub", "/pub"),
        ("-a  dir name", "dir name"),
        ("/pub", "/pub"),
        ("-- -weird", "-weird"),
        ("dir -l", "dir -l"),
    ],
)
def test_strip_list_flags(arg: str, expected: str) -> None:
    assert strip_list_flags(arg) == expected
