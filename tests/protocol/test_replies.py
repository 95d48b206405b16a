"""Reply formatting: aioftp's layout, and no way to forge a protocol line."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.protocol.replies import encode_reply, format_reply, one_line, quote_path


def test_single_line() -> None:
    assert format_reply("200", "ok") == ["200 ok"]
    assert format_reply("200", ["ok"]) == ["200 ok"]
    assert format_reply("200", ("ok",), as_list=True) == ["200 ok"]


def test_empty_text_keeps_the_space() -> None:
    assert format_reply("200", "") == ["200 "]
    assert format_reply("200", None) == ["200 "]
    assert format_reply("200", []) == ["200 "]
    assert format_reply("200") == ["200 "]


def test_multi_line_default() -> None:
    assert format_reply("211", ["Features:", "SIZE", "End"]) == [
        "211-Features:",
        "211-SIZE",
        "211 End",
    ]


def test_multi_line_as_list() -> None:
    assert format_reply("211", ["Features:", "SIZE", "MDTM", "End"], as_list=True) == [
        "211-Features:",
        " SIZE",
        " MDTM",
        "211 End",
    ]
    assert format_reply("250", ["start", "end"], as_list=True) == ["250-start", "250 end"]


def test_non_string_items_are_converted() -> None:
    assert format_reply("213", [42]) == ["213 42"]


@pytest.mark.parametrize("evil", ["x\r\n230 ok", "x\n230 ok", "x\r230 ok", "\r\n"])
def test_crlf_cannot_forge_lines(evil: str) -> None:
    for lines in (evil, [evil], ["head", evil, "tail"]):
        for as_list in (False, True):
            out = format_reply("550", lines, as_list=as_list)
            for line in out:
                assert "\r" not in line and "\n" not in line
            data = encode_reply(out, "utf-8")
            assert data.count(b"\r\n") == len(out)
            assert data.count(b"\n") == len(out)


@given(
    st.lists(st.text(max_size=30), max_size=6) | st.text(max_size=30),
    st.booleans(),
)
def test_reply_structure(lines: str | list[str], as_list: bool) -> None:
    out = format_reply("226", lines, as_list=as_list)
    assert out
    assert out[-1].startswith("226 ")
    for line in out[:-1]:
        assert line.startswith("226-") or (as_list and line.startswith(" "))
    for line in out:
        assert "\r" not in line and "\n" not in line
    # A client reading RFC 959 style stops at the first "226 " line: the last one.
    assert [i for i, line in enumerate(out) if line.startswith("226 ")] == [len(out) - 1]


def test_one_line() -> None:
    assert one_line("a\r\nb") == "a  b"
    text = "plain"
    assert one_line(text) is text


def test_quote_path() -> None:
    assert quote_path("/a") == '"/a"'
    assert quote_path('/say "hi"') == '"/say ""hi"""'
    assert quote_path("/x\r\n257 y") == '"/x\x00\x00257 y"'


def test_encode_reply() -> None:
    assert encode_reply(["200 ok"], "utf-8") == b"200 ok\r\n"
    assert encode_reply(["211-a", "211 b"], "utf-8") == b"211-a\r\n211 b\r\n"
    assert encode_reply(["550 caf\udce9"], "utf-8") == b"550 caf\xe9\r\n"
    assert encode_reply(['257 "/\u00e9"'], "utf-8") == b'257 "/\xc3\xa9"\r\n'
