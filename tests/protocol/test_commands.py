"""Command line parsing, Telnet stripping, the command table."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.protocol.commands import (
    COMMANDS,
    MAX_LINE_LENGTH,
    CommandInfo,
    decode_line,
    encode_text,
    feat_lines,
    help_lines,
    is_verb,
    parse_command,
    strip_telnet,
)

IAC = b"\xff"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"ABOR\r\n", b"ABOR\r\n"),
        (b"\xff\xf4\xff\xf2ABOR\r\n", b"ABOR\r\n"),  # IAC IP, IAC DM (RFC 959 4.1.3)
        (b"\xff\xf5\xff\xf6\xff\xf1NOOP", b"NOOP"),  # IAC AO, IAC AYT, IAC NOP
        (b"\xff\xfb\x01\xff\xfc\x03\xff\xfd\x18\xff\xfe\x1fUSER", b"USER"),  # options
        (b"STOR a\xff\xffb", b"STOR a\xffb"),  # escaped 0xFF data byte
        (b"\xff\xfa\x18\x00xterm\xff\xf0PWD", b"PWD"),  # subnegotiation
        (b"\xff\xfa\x18a\xff\xffb\xff\xf0PWD", b"PWD"),  # IAC IAC inside SB
        (b"PWD\xff", b"PWD\xff"),  # a lone 0xFF is a raw byte of a name, kept
        (b"caf\xe9\xff\r\n", b"caf\xe9\xff\r\n"),  # undoubled 0xFF before CR, kept
        (b"PWD\xff\xfb", b"PWD"),  # truncated option
        (b"PWD\xff\xfa\x18abc", b"PWD"),  # unterminated SB
        (b"", b""),
        (b"\xff\xff\xff\xff", b"\xff\xff"),
    ],
)
def test_strip_telnet(data: bytes, expected: bytes) -> None:
    assert strip_telnet(data) == expected


def test_strip_telnet_fast_path_returns_input() -> None:
    data = b"RETR file.txt\r\n"
    assert strip_telnet(data) is data


@given(st.binary(max_size=300))
def test_strip_telnet_never_raises(data: bytes) -> None:
    out = strip_telnet(data)
    assert isinstance(out, bytes)
    assert len(out) <= len(data)


@given(st.binary(max_size=200).filter(lambda b: b"\xff" not in b))
def test_strip_telnet_is_identity_without_iac(data: bytes) -> None:
    assert strip_telnet(data) == data


@given(st.binary(max_size=200))
def test_strip_telnet_inverts_iac_doubling(data: bytes) -> None:
    assert strip_telnet(data.replace(IAC, IAC + IAC)) == data


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("USER alice\r\n", ("user", "alice")),
        ("user alice\n", ("user", "alice")),
        ("PWD\r\n", ("pwd", "")),
        ("PWD", ("pwd", "")),
        ("STOR  leading space.txt\r\n", ("stor", " leading space.txt")),
        ("STOR trailing space.txt  \r\n", ("stor", "trailing space.txt  ")),
        ("STOR a b c\r\n", ("stor", "a b c")),
        ("PASS \r\n", ("pass", "")),
        ("", ("", "")),
        ("\r\n", ("", "")),
        (" USER x\r\n", ("", "USER x")),
        ("FOO123 x", ("foo123", "x")),
        ("MkD dir", ("mkd", "dir")),
    ],
)
def test_parse_command(line: str, expected: tuple[str, str]) -> None:
    assert parse_command(line) == expected


@given(st.text(alphabet=st.characters(blacklist_characters="\r\n"), max_size=100))
def test_parse_command_keeps_argument_exactly(arg: str) -> None:
    verb, rest = parse_command(f"STOR {arg}\r\n")
    assert verb == "stor"
    assert rest == arg


@given(st.text(max_size=100))
def test_parse_command_never_raises(line: str) -> None:
    verb, rest = parse_command(line)
    assert " " not in verb
    assert verb == verb.lower()


@pytest.mark.parametrize(
    ("verb", "ok"),
    [("user", True), ("xpwd", True), ("abcdefgh", True), ("abcdefghi", False),
     ("", False), ("us3r", False), ("ü", False)],
)  # fmt: skip
def test_is_verb(verb: str, ok: bool) -> None:
    assert is_verb(verb) is ok


@given(st.binary(max_size=200))
def test_decode_encode_round_trip_is_lossless(raw: bytes) -> None:
    assert encode_text(decode_line(raw, "utf-8"), "utf-8") == raw


@given(st.binary(max_size=200))
def test_decode_encode_round_trip_latin1(raw: bytes) -> None:
    assert encode_text(decode_line(raw, "latin-1"), "latin-1") == raw


def test_non_utf8_name_survives() -> None:
    raw = b"RETR caf\xe9.txt\r\n"
    verb, arg = parse_command(decode_line(raw, "utf-8"))
    assert verb == "retr"
    assert encode_text(arg, "utf-8") == b"caf\xe9.txt"


@given(st.text(max_size=100))
def test_encode_text_never_raises(text: str) -> None:
    assert isinstance(encode_text(text, "utf-8"), bytes)
    assert isinstance(encode_text(text, "ascii"), bytes)


def test_encode_text_replaces_unencodable_surrogate() -> None:
    assert encode_text("a\ud800b\udce9", "utf-8") == b"a?b\xe9"


def test_max_line_length() -> None:
    assert MAX_LINE_LENGTH == 4096


REQUIRED = (
    "USER PASS ACCT QUIT PWD XPWD CWD XCWD CDUP XCUP MKD XMKD RMD XRMD LIST NLST MLSD "
    "MLST RNFR RNTO DELE STOR APPE RETR TYPE MODE STRU PBSZ PROT AUTH PASV EPSV PORT "
    "EPRT ABOR REST SYST NOOP FEAT OPTS SIZE MDTM HELP STAT SITE ALLO STOU"
).split()


def test_command_table_complete_and_consistent() -> None:
    for name in REQUIRED:
        info = COMMANDS[name.lower()]
        assert isinstance(info, CommandInfo)
        assert info.name == name
        assert info.arg in ("required", "optional", "none")
        assert info.permission in ("read", "write", None)
        assert info.help.startswith(name)
    for key, info in COMMANDS.items():
        assert key == info.name.lower()


def test_command_table_login_and_permissions() -> None:
    for name in ("user", "pass", "quit", "feat", "auth", "pbsz", "prot", "syst", "noop"):
        assert not COMMANDS[name].needs_login
    for name in ("stor", "retr", "list", "mkd", "dele", "cwd", "pasv"):
        assert COMMANDS[name].needs_login
    assert COMMANDS["stor"].permission == "write"
    assert COMMANDS["appe"].permission == "write"
    assert COMMANDS["retr"].permission == "read"
    assert COMMANDS["stor"].arg == "required"
    assert COMMANDS["pwd"].arg == "none"
    assert COMMANDS["list"].arg == "optional"


def test_command_info_is_frozen() -> None:
    with pytest.raises(AttributeError):
        COMMANDS["stor"].needs_login = False  # type: ignore[misc]


def test_feat_lines() -> None:
    lines = feat_lines({"size", "MDTM", "mlsd", "mlst", "epsv", "rest", "opts", "user"})
    assert lines == sorted(lines)
    assert lines == [
        "EPSV",
        "MDTM",
        "MLST type*;size*;modify*;create*;perm*;unique*;",
        "REST STREAM",
        "SIZE",
        "UTF8",
    ]
    assert feat_lines(set()) == []
    assert feat_lines({"nosuchverb"}) == []
    assert "AUTH TLS" in feat_lines({"auth", "pbsz", "prot"})


def test_help_lines() -> None:
    lines = help_lines()
    assert lines == sorted(lines)
    assert len(lines) == len(COMMANDS)
    assert "STOR <sp> file-name" in lines
    assert help_lines({"STOR", "retr"}) == ["RETR <sp> file-name", "STOR <sp> file-name"]
