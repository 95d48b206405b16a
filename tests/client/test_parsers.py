"""The client's pure parsers: replies, passive addresses, PWD, LIST and MLSx lines."""

from __future__ import annotations

import datetime
from pathlib import PurePosixPath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.client import BaseClient, Code, parsers

NOW = datetime.datetime(2023, 11, 20, 12, 0)


def reply(*lines: str) -> tuple[Code, list[str]]:
    collector = parsers.MultilineReply()
    for i, line in enumerate(lines):
        done = collector.feed(*parsers.parse_reply_line(line + "\r\n"))
        assert done == (i == len(lines) - 1), line
    assert collector.code is not None
    return collector.code, collector.info


# --- replies -----------------------------------------------------------------


def test_single_line_reply() -> None:
    assert reply("200 ok") == ("200", [" ok"])
    assert reply("200") == ("200", [""])


def test_multi_line_reply_with_text_lines() -> None:
    code, info = reply("211-Features:", " MLST type*;size*;", " EPSV", "211 End")
    assert code == "211"
    assert info == ["-Features:", " MLST type*;size*;", " EPSV", " End"]


def test_multi_line_reply_other_codes_inside_are_text() -> None:
    code, info = reply("230-Welcome", " 226 indented", "226-dash", "230-still", "230 done")
    assert code == "230"
    assert info == ["-Welcome", " 226 indented", "226-dash", "-still", " done"]


@pytest.mark.parametrize("intruder", ["220 tail", "226", "211 end of another reply"])
def test_multi_line_reply_interrupted_by_another_last_line(intruder: str) -> None:
    # A server that starts "221-" and ends "220 " would leave the client waiting
    # for "221 " forever; the shape of another reply's last line is an error.
    collector = parsers.MultilineReply()
    collector.feed(*parsers.parse_reply_line("221-hello\r\n"))
    with pytest.raises(parsers.ReplySequenceError) as caught:
        collector.feed(*parsers.parse_reply_line(intruder + "\r\n"))
    assert (caught.value.code, caught.value.received) == ("221", intruder[:3])
    assert caught.value.info == ["-hello", intruder]
    assert isinstance(caught.value, ValueError)


def test_malformed_first_line() -> None:
    with pytest.raises(ValueError, match="malformed"):
        parsers.MultilineReply().feed(*parsers.parse_reply_line("hello there"))


def test_feed_after_done() -> None:
    collector = parsers.MultilineReply()
    collector.feed(Code("200"), " ok")
    with pytest.raises(ValueError):
        collector.feed(Code("200"), " again")


# --- PASV / EPSV / PWD ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (" Entering Passive Mode (127,0,0,1,4,1).", ("127.0.0.1", 1025)),
        (" Entering Passive Mode 10,1,2,3,255,255", ("10.1.2.3", 65535)),
        (" =(192, 168, 0, 1, 0, 21)", ("192.168.0.1", 21)),
    ],
)
def test_pasv(text: str, expected: tuple[str, int]) -> None:
    assert BaseClient.parse_pasv_response(text) == expected


@pytest.mark.parametrize(
    "text", [" no numbers", " (1,2,3,4,5)", " (300,0,0,1,4,1)", " (1,2,3,4,0,0)", ""]
)
def test_bad_pasv(text: str) -> None:
    with pytest.raises(ValueError):
        BaseClient.parse_pasv_response(text)


def test_epsv() -> None:
    assert BaseClient.parse_epsv_response(" Extended Passive (|||6446|)") == (None, 6446)
    assert BaseClient.parse_epsv_response(" ok (!!!21!) (|||6447|)") == (None, 6447)
    for bad in (" (|||0|)", " (||6446|)", " (|||99999|)", " nothing"):
        with pytest.raises(ValueError):
            BaseClient.parse_epsv_response(bad)


@pytest.mark.parametrize(
    ("announced", "control", "expected"),
    [
        (None, "ftp.example.com", "ftp.example.com"),
        ("0.0.0.0", "10.0.0.5", "10.0.0.5"),
        ("192.168.1.2", "8.8.8.8", "8.8.8.8"),
        ("192.168.1.2", "ftp.example.com", "ftp.example.com"),
        ("192.168.1.2", "192.168.1.1", "192.168.1.2"),
        ("127.0.0.1", "127.0.0.1", "127.0.0.1"),
        ("1.1.1.1", "8.8.8.8", "1.1.1.1"),
    ],
)
def test_choose_passive_host(announced: str | None, control: str, expected: str) -> None:
    assert parsers.choose_passive_host(announced, control) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (' "/" is the current directory', "/"),
        (' "/a ""quoted"" dir" created', '/a "quoted" dir'),
        (' "/with space/x"', "/with space/x"),
        (' """"', '"'),
    ],
)
def test_directory_response(text: str, expected: str) -> None:
    assert BaseClient.parse_directory_response(text) == PurePosixPath(expected)


@pytest.mark.parametrize("text", [" no quotes here", ' "unterminated', ' "also ""unterminated'])
def test_bad_directory_response(text: str) -> None:
    with pytest.raises(ValueError):
        BaseClient.parse_directory_response(text)


# --- modes and dates -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ("rwxr-xr-x", 0o755),
        ("rw-r--r--", 0o644),
        ("---------", 0),
        ("rwsr-sr-t", 0o7755),
        ("rwSr-Sr-T", 0o7644),
        ("rw-r-lr--", 0o2644),
    ],
)
def test_unix_mode(text: str, mode: int) -> None:
    assert BaseClient.parse_unix_mode(text) == mode


@pytest.mark.parametrize("text", ["rwxr-xr-", "rwxr-xr-xx", "rwzr-xr-x", "qwxr-xr-x", "rwxr-xr-s"])
def test_bad_unix_mode(text: str) -> None:
    with pytest.raises(ValueError):
        BaseClient.parse_unix_mode(text)


def test_format_date_time() -> None:
    d = datetime.datetime(2020, 1, 2, 3, 4, 59)
    assert BaseClient.format_date_time(d) == "20200102030400"


@pytest.mark.parametrize(
    ("text", "now", "expected"),
    [
        ("Nov 11 15:15", NOW, "20231111151500"),
        ("Dec 31 23:59", datetime.datetime(2024, 1, 10), "20231231235900"),
        ("Jan  2 00:01", datetime.datetime(2023, 12, 30), "20240102000100"),
        ("Jun  1 10:00", datetime.datetime(2023, 11, 20), "20230601100000"),
        ("Feb 29 12:00", datetime.datetime(2024, 6, 1), "20240229120000"),
        ("Feb 29 12:00", datetime.datetime(2025, 1, 1), "20240229120000"),
        # Feb 29 is in the nearest leap year, which may be ahead of now.
        ("Feb 29 00:00", datetime.datetime(2026, 2, 28), "20240229000000"),
        ("Feb 29 00:00", datetime.datetime(2026, 3, 2), "20280229000000"),
        ("Feb 29 00:00", datetime.datetime(2027, 1, 1), "20280229000000"),
        ("Feb 29 00:00", datetime.datetime(2021, 12, 31), "20200229000000"),
        ("Feb 29 00:00", datetime.datetime(2022, 6, 1), "20240229000000"),
        ("Jan  1  2020", NOW, "20200101000000"),
        ("Jan 1 2020", NOW, "20200101000000"),
        ("sep 30  1999", NOW, "19990930000000"),
    ],
)
def test_ls_date(text: str, now: datetime.datetime, expected: str) -> None:
    assert BaseClient.parse_ls_date(text, now=now) == expected


def test_ls_date_defaults_to_now() -> None:
    result = BaseClient.parse_ls_date("Jan  1 00:00")
    assert result.endswith("01010000" + "00")


@pytest.mark.parametrize(
    "text", ["Foo 11 12:00", "Nov 31  2023", "Nov 11 25:00", "Nov 11", "Nov 11 12:0", "Nov xx 2023"]
)
def test_bad_ls_date(text: str) -> None:
    with pytest.raises(ValueError):
        BaseClient.parse_ls_date(text, now=NOW)


# --- LIST lines ------------------------------------------------------------------

client = BaseClient()


def test_unix_file() -> None:
    name, info = parsers.parse_list_line_unix(
        "-rw-r--r--   1 owner group    1234 Nov 11 15:15 report.txt", now=NOW
    )
    assert name == PurePosixPath("report.txt")
    assert info == {
        "type": "file",
        "unix.mode": 0o644,
        "unix.links": "1",
        "unix.owner": "owner",
        "unix.group": "group",
        "size": "1234",
        "modify": "20231111151500",
    }


def test_unix_dir_with_year_and_spaces_in_name() -> None:
    name, info = client.parse_list_line_unix(
        b"drwxr-xr-x  3 ftp ftp 4096 Jan  1  2020 my  dir name \r\n"
    )
    assert name == PurePosixPath("my  dir name")
    assert info["type"] == "dir"
    assert info["modify"] == "20200101000000"


def test_unix_symlink() -> None:
    name, info = client.parse_list_line_unix(
        b"lrwxrwxrwx 1 root root 7 Jan  1  2020 my link -> target dir/"
    )
    # As aioftp reports it: a file, whose target is "link_dst".
    assert name == PurePosixPath("my link")
    assert info["type"] == "file"
    assert info["link_dst"] == "target dir/"
    _, info = client.parse_list_line_unix(b"lrwxrwxrwx 1 poh poh 6 Mar 23 05:46 l -> /tmp.py")
    assert info["link_dst"] == "/tmp.py"


@pytest.mark.parametrize(
    "line",
    [
        b"drwxr-xr-x  3 ftp ftp 4096 Jan  1  2020 .",
        b"drwxr-xr-x  3 ftp ftp 4096 Jan  1  2020 ..",
        b" 11/4/2018   9:09 PM  <DIR>         .",
        b" 8/10/2018   1:02 PM  <DIR>         ..",
    ],
)
def test_dot_entries_are_not_entries(line: bytes) -> None:
    with pytest.raises(parsers.NotAnEntry):
        client.parse_list_line(line)
    parse = client.parse_list_line_windows if b"<DIR>" in line else client.parse_list_line_unix
    with pytest.raises(ValueError):
        parse(line)


def test_unix_without_group_and_acl_marker() -> None:
    name, info = client.parse_list_line_unix(b"-rw-r--r--+ 1 owner 10 Jan  1  2020 a")
    assert name == PurePosixPath("a")
    assert "unix.group" not in info
    assert info["size"] == "10"


def test_unix_numeric_owner_group_and_device() -> None:
    _, info = client.parse_list_line_unix(b"-rw-r--r-- 1 1000 1000 5 Jan  1  2020 f")
    assert (info["unix.owner"], info["unix.group"], info["size"]) == ("1000", "1000", "5")
    name, info = client.parse_list_line_unix(b"crw-rw-rw- 1 root root 1, 3 Jan  1  2020 null")
    assert name == PurePosixPath("null")
    assert info["type"] == "unknown"
    assert "size" not in info
    # Any other type letter is an entry of unknown type, as aioftp reports it.
    for letter in "Ezp":
        _, info = client.parse_list_line_unix(f"{letter}rw-rw-r-- 1 o g 6 Feb 27 04:14 h".encode())
        assert info["type"] == "unknown"


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"total 12",
        b"-rw-r--r-- 1 owner group 12 Nov 11 15:15",
        b"-rw-r--r-- x owner group 12 Nov 11 15:15 name",
        b"-rw-r--r-- 1 owner group big Nov 11 15:15 name",
        b" rw-r--r-- 1 owner group 12 Nov 11 15:15 name",
        b"-rw-r--r-- 1 owner group 12 Xyz 11 15:15 name",
    ],
)
def test_unix_garbage(line: bytes) -> None:
    with pytest.raises(ValueError):
        client.parse_list_line_unix(line)


def test_windows_dir_and_file() -> None:
    name, info = client.parse_list_line_windows(
        b"11/11/2023  03:15 PM    <DIR>          Program Files"
    )
    assert name == PurePosixPath("Program Files")
    assert info == {"type": "dir", "modify": "20231111151500"}
    name, info = client.parse_list_line_windows(b"01/02/2020  12:05 AM         1,234,567 a b.txt")
    assert name == PurePosixPath("a b.txt")
    assert info == {"type": "file", "size": "1234567", "modify": "20200102000500"}


def test_windows_iis_short_format() -> None:
    name, info = client.parse_list_line_windows(b"01-29-97  11:32PM       <DIR>          prog")
    assert name == PurePosixPath("prog")
    assert info["modify"] == "19970129233200"
    _, info = client.parse_list_line_windows(b"03-04-21  13:07  512 x")
    assert info["modify"] == "20210304130700"
    assert info["size"] == "512"


@pytest.mark.parametrize(
    "line",
    [
        b"13/40/2023  03:15 PM    <DIR>          x",
        b"11/11/2023  13:15 PM    <DIR>          x",
        b"11/11/2023  03:15 PM    <FOO>          x",
        b"11/11/2023  03:15 PM    <DIR>",
        b"hello",
    ],
)
def test_windows_garbage(line: bytes) -> None:
    with pytest.raises(ValueError):
        client.parse_list_line_windows(line)


def test_parse_list_line_tries_all() -> None:
    assert client.parse_list_line(b"-rw-r--r-- 1 o g 3 Jan  1  2020 u")[0] == PurePosixPath("u")
    assert client.parse_list_line(b"11/11/2023  03:15 PM  <DIR> w")[1]["type"] == "dir"
    with pytest.raises(ValueError, match="no parser"):
        client.parse_list_line(b"what is this")


def test_parse_list_line_custom_first_and_last() -> None:
    def custom(b: bytes) -> tuple[PurePosixPath, dict]:
        if not b.startswith(b"custom:"):
            raise ValueError("not mine")
        return PurePosixPath(b[7:].decode()), {"type": "file"}

    first = BaseClient(parse_list_line_custom=custom)
    assert first.parse_list_line(b"custom:x") == (PurePosixPath("x"), {"type": "file"})
    unix = b"-rw-r--r-- 1 o g 3 Jan  1  2020 custom:y"
    assert first.parse_list_line(unix)[1]["type"] == "file"

    def claims_everything(b: bytes) -> tuple[PurePosixPath, dict]:
        return PurePosixPath("claimed"), {"type": "unknown"}

    last = BaseClient(parse_list_line_custom=claims_everything, parse_list_line_custom_first=False)
    assert last.parse_list_line(unix)[0] == PurePosixPath("custom:y")
    assert last.parse_list_line(b"garbage")[0] == PurePosixPath("claimed")
    eager = BaseClient(parse_list_line_custom=claims_everything)
    assert eager.parse_list_line(unix)[0] == PurePosixPath("claimed")


def test_encoding_is_used() -> None:
    latin = BaseClient(encoding="latin-1")
    name, _ = latin.parse_list_line(b"-rw-r--r-- 1 o g 3 Jan  1  2020 caf\xe9")
    assert name == PurePosixPath("café")
    with pytest.raises(ValueError):
        client.parse_list_line(b"-rw-r--r-- 1 o g 3 Jan  1  2020 caf\xe9")


# --- MLSx ------------------------------------------------------------------------


def test_mlsx_line() -> None:
    name, info = client.parse_mlsx_line(b"Type=file;Size=12;Modify=20230101120000; a; b c.txt\r\n")
    assert name == PurePosixPath("a; b c.txt")
    assert info == {"type": "file", "size": "12", "modify": "20230101120000"}


def test_mlsx_line_variants() -> None:
    # MLST's leading space, type values in any case, names with trailing spaces.
    name, info = client.parse_mlsx_line(" type=DIR;unix.mode=0755; /abs/dir ")
    assert name == PurePosixPath("/abs/dir ")
    assert info == {"type": "dir", "unix.mode": "0755"}
    assert client.parse_mlsx_line(" no facts")[0] == PurePosixPath("no facts")
    _, info = client.parse_mlsx_line("type=OS.unix=slink:/Target; l")
    assert info["type"] == "OS.unix=slink:/Target"


@pytest.mark.parametrize(
    "line", [b"type=file;size=1", b"type=file; ", b"typefile; name", b"=x; name", b""]
)
def test_mlsx_garbage(line: bytes) -> None:
    with pytest.raises(ValueError):
        client.parse_mlsx_line(line)


# --- fuzz ------------------------------------------------------------------------

_list_like = st.one_of(
    st.binary(max_size=120),
    st.builds(
        lambda mode, links, size, month, day, tail, name: (
            f"{mode} {links} own grp {size} {month} {day} {tail} {name}".encode()
        ),
        st.text(alphabet="-dlrwxsStT", min_size=10, max_size=10),
        st.integers(-1, 99999),
        st.integers(-1, 10**12),
        st.sampled_from(["Jan", "Feb", "Xyz", "feb", "Sept"]),
        st.integers(-1, 40),
        st.sampled_from(["12:00", "99:99", "2020", "0000", "1:5"]),
        st.text(max_size=20),
    ),
    st.builds(
        lambda m, d, y, t, size, name: f"{m}/{d}/{y}  {t}  {size}  {name}".encode(),
        st.integers(0, 13),
        st.integers(0, 32),
        st.integers(0, 3000),
        st.sampled_from(["03:15 PM", "13:15 PM", "00:00 AM", "23:59", "3:7"]),
        st.sampled_from(["<DIR>", "1,234", "12", ",", "1.0"]),
        st.text(max_size=20),
    ),
)


@settings(max_examples=400, deadline=None)
@given(_list_like)
def test_fuzz_parse_list_line_only_raises_value_error(line: bytes) -> None:
    try:
        name, info = client.parse_list_line(line)
    except ValueError:
        return
    assert isinstance(name, PurePosixPath)
    assert info["type"] in ("file", "dir", "unknown")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_fuzz_mlsx_and_replies_only_raise_value_error(text: str) -> None:
    for parse in (
        client.parse_mlsx_line,
        BaseClient.parse_pasv_response,
        BaseClient.parse_epsv_response,
        BaseClient.parse_directory_response,
    ):
        try:
            parse(text)
        except ValueError:
            pass
