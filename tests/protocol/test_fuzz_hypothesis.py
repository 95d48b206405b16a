"""Property tests of the pure command-side parsers: any input gives a result or a
ValueError, never another exception, and what must round-trip does."""

from __future__ import annotations

from pathlib import PurePosixPath

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.protocol.addresses import (
    format_eprt_argument,
    format_port_argument,
    parse_eprt,
    parse_epsv_arg,
    parse_port,
)
from gateway.protocol.commands import decode_line, encode_text, is_verb, parse_command, strip_telnet
from gateway.protocol.listing import format_list_line, parse_mdtm, strip_list_flags
from gateway.protocol.paths import is_within, resolve_virtual, virtual_to_real
from gateway.protocol.replies import format_reply
from gateway.protocol.types import parse_mode, parse_stru, parse_type

ENCODINGS = st.sampled_from(["utf-8", "latin-1", "cp1251", "gbk", "shift_jis"])
ARG_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60) | st.sampled_from(
    ["", "-la", "*.jpg", "../../etc/passwd", "|1|127.0.0.1|5000|", "127,0,0,1,4,1", "ALL", "L 8"]
)


@settings(max_examples=300)
@given(st.binary(max_size=200), ENCODINGS)
def test_command_line_pipeline_never_raises(raw: bytes, encoding: str) -> None:
    stripped = strip_telnet(raw)
    assert len(stripped) <= len(raw)
    line = decode_line(stripped, encoding)
    verb, rest = parse_command(line)
    assert verb == verb.lower()
    is_verb(verb)
    # what was decoded encodes back to the same bytes: names are lossless
    assert encode_text(line, encoding) == stripped


@settings(max_examples=300)
@given(st.binary(max_size=80).filter(lambda b: b"\xff" not in b))
def test_strip_telnet_keeps_plain_bytes(raw: bytes) -> None:
    assert strip_telnet(raw) == raw
    assert strip_telnet(raw.replace(b"\xff", b"") + b"\xff\xff") == raw + b"\xff"


@settings(max_examples=300)
@given(ARG_TEXT)
def test_argument_parsers_raise_only_value_error(text: str) -> None:
    for parser in (parse_port, parse_eprt, parse_epsv_arg, parse_type, parse_mode, parse_stru, parse_mdtm):
        try:
            parser(text)
        except ValueError:
            pass
    strip_list_flags(text)


@given(st.ip_addresses(v=4), st.integers(1, 65535))
def test_port_and_eprt_round_trip(address, port: int) -> None:  # type: ignore[no-untyped-def]
    assert parse_port(format_port_argument(str(address), port)) == (str(address), port)
    assert parse_eprt(format_eprt_argument(str(address), port)) == (str(address), port)


@given(st.ip_addresses(v=6), st.integers(1, 65535))
def test_eprt_round_trips_ipv6(address, port: int) -> None:  # type: ignore[no-untyped-def]
    if address.ipv4_mapped is None:
        assert parse_eprt(format_eprt_argument(str(address), port)) == (str(address), port)


@settings(max_examples=300)
@given(st.lists(st.sampled_from(["..", ".", "a", "b c", "", "//", "-x", "\udcff", "é"]), max_size=8), st.booleans())
def test_virtual_paths_never_leave_the_root(parts: list[str], absolute: bool) -> None:
    argument = ("/" if absolute else "") + "/".join(parts)
    cwd = PurePosixPath("/home/dir")
    try:
        virtual = resolve_virtual(cwd, argument)
    except ValueError:
        return
    real = virtual_to_real(PurePosixPath("/srv/root"), virtual)
    assert is_within(PurePosixPath("/srv/root"), real)


@settings(max_examples=200)
@given(st.text(max_size=40), st.lists(st.text(max_size=40), max_size=4), st.booleans())
def test_replies_are_always_well_formed(code_text: str, lines: list[str], as_list: bool) -> None:
    out = format_reply("250", lines or code_text, as_list=as_list)
    assert out[-1].startswith("250 ")
    assert all("\r" not in line and "\n" not in line for line in out)
    assert all(not line.startswith("250 ") for line in out[:-1])


@settings(max_examples=200)
@given(st.text(max_size=40), st.integers(0, 2**40), st.floats(-1e12, 1e12, allow_nan=False))
def test_list_lines_are_single_lines(name: str, size: int, mtime: float) -> None:
    class Stat:
        st_mode = 0o100644
        st_size = size
        st_mtime = mtime
        st_nlink = 1

    line = format_list_line(name, Stat(), now=1.7e9)
    assert "\n" not in line and "\r" not in line
    assert line.startswith("-rw-r--r--")
