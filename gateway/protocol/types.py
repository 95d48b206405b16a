"""TYPE, MODE and STRU arguments.

Only what is worth serving is accepted: ASCII (non-print) and image types, stream mode
and file structure, the RFC 959 minimum implementation plus ``L 8`` (which is image on
every machine that still exists).  Anything else raises ValueError (reply 504/501).
"""

from __future__ import annotations

__all__ = ("MAX_REST_OFFSET", "parse_type", "parse_mode", "parse_stru", "parse_rest")

_TYPES = {
    ("A",): "A",
    ("A", "N"): "A",
    ("I",): "I",
    ("L", "8"): "I",
}


def parse_type(arg: str) -> str:
    """``"A"`` or ``"I"`` for a TYPE argument, case-insensitively."""
    result = _TYPES.get(tuple(arg.upper().split()))
    if result is None:
        raise ValueError(f"unsupported type {arg!r}")
    return result


def parse_mode(arg: str) -> str:
    """``"S"``: block and compressed modes have no users left."""
    if arg.strip().upper() != "S":
        raise ValueError(f"unsupported mode {arg!r}")
    return "S"


def parse_stru(arg: str) -> str:
    """``"F"``: record and page structures have no users left."""
    if arg.strip().upper() != "F":
        raise ValueError(f"unsupported structure {arg!r}")
    return "F"


#: The largest offset a file can have (a signed 64-bit ``off_t``).
MAX_REST_OFFSET = 2**63 - 1
_MAX_REST_DIGITS = len(str(MAX_REST_OFFSET))


def parse_rest(arg: str) -> int:
    """The byte offset of a REST argument: ASCII digits only, at most ``MAX_REST_OFFSET``.

    ``str.isdigit`` alone is not enough: it accepts superscripts (``²``) and other
    scripts' digits that ``int`` then refuses or reads differently; and a long digit
    string would make ``int`` raise its own error (or spend time converting it).
    """
    text = arg.strip()
    if not text or len(text) > _MAX_REST_DIGITS or not (text.isascii() and text.isdigit()):
        raise ValueError(f"bad restart offset {arg!r}")
    offset = int(text)
    if offset > MAX_REST_OFFSET:
        raise ValueError(f"restart offset {arg!r} is too large")
    return offset
