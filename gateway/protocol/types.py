"""TYPE, MODE and STRU arguments.

Only what is worth serving is accepted: ASCII (non-print) and image types, stream mode
and file structure, the RFC 959 minimum implementation plus ``L 8`` (which is image on
every machine that still exists).  Anything else raises ValueError (reply 504/501).
"""

from __future__ import annotations

__all__ = ("parse_type", "parse_mode", "parse_stru")

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
