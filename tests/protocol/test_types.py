"""TYPE / MODE / STRU arguments."""

from __future__ import annotations

import pytest

from gateway.protocol.types import parse_mode, parse_stru, parse_type


@pytest.mark.parametrize(
    ("arg", "expected"),
    [("A", "A"), ("a", "A"), ("A N", "A"), ("a n", "A"), ("I", "I"), ("i", "I"),
     ("L 8", "I"), ("l 8", "I"), (" I ", "I")],
)  # fmt: skip
def test_parse_type(arg: str, expected: str) -> None:
    assert parse_type(arg) == expected


@pytest.mark.parametrize("arg", ["", "E", "A T", "A C", "L 7", "L", "X", "I N", "AN"])
def test_parse_type_rejects(arg: str) -> None:
    with pytest.raises(ValueError):
        parse_type(arg)


def test_parse_mode_and_stru() -> None:
    assert parse_mode("S") == parse_mode("s") == "S"
    assert parse_stru("F") == parse_stru("f") == "F"
    for bad in ("B", "C", ""):
        with pytest.raises(ValueError):
            parse_mode(bad)
    for bad in ("R", "P", ""):
        with pytest.raises(ValueError):
            parse_stru(bad)
