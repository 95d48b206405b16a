"""The pure checks behind "names a client can trust" and REST: which names FTP may
create, how existing names are shown in listings, which REST offsets are numbers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.protocol.listing import (
    format_list_line,
    format_mlsx_line,
    format_nlst_line,
    listing_name,
)
from gateway.protocol.paths import name_allowed
from gateway.protocol.types import MAX_REST_OFFSET, parse_rest


class _Stat:
    st_mode = 0o100644
    st_size = 1
    st_mtime = 0.0
    st_nlink = 1


@pytest.mark.parametrize("name", ["a\rb", "a\nb", "a\0b", "\r", "dir\n/x", "x\r\n"])
def test_names_with_line_breaks_or_nul_are_not_creatable(name: str) -> None:
    assert not name_allowed(name)


@pytest.mark.parametrize("name", ["a b", " lead", "caf\udce9", "tab\tname", "é/ü", "a\\b", "\x85\u2028"])
def test_other_names_are_creatable(name: str) -> None:
    assert name_allowed(name)


@given(st.text())
def test_every_listing_shows_a_name_as_one_line(name: str) -> None:
    shown = listing_name(name)
    assert "\r" not in shown and "\n" not in shown
    assert len(shown) == len(name)  # one character for one: nothing hides or merges
    assert format_nlst_line(name) == shown
    assert format_list_line(name, _Stat(), now=0.0).endswith(" " + shown)
    assert format_mlsx_line(name, _Stat(), facts=("type",)) == "type=file; " + shown


def test_line_breaks_become_nul_in_listings() -> None:
    assert listing_name("nl\nforged.txt") == "nl\0forged.txt"
    assert listing_name("a\r\nb") == "a\0\0b"
    assert listing_name("plain") == "plain"


@pytest.mark.parametrize(
    ("text", "offset"),
    [("0", 0), ("17", 17), (" 5 ", 5), ("007", 7), (str(MAX_REST_OFFSET), MAX_REST_OFFSET)],
)
def test_parse_rest(text: str, offset: int) -> None:
    assert parse_rest(text) == offset


@pytest.mark.parametrize(
    "text",
    ["", " ", "²", "1²", "٣", "３", "-1", "+1", "1_000", "1.0", "0x1", "1 2", str(MAX_REST_OFFSET + 1),
     "9" * 5000, "STREAM"],
)  # fmt: skip
def test_parse_rest_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rest(text)


@given(st.text(max_size=30))
def test_parse_rest_only_value_error(text: str) -> None:
    try:
        offset = parse_rest(text)
    except ValueError:
        return
    assert 0 <= offset <= MAX_REST_OFFSET and text.strip().isascii()
