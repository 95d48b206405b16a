"""Where a key sits in a TOML file, so an error can name the line.

``tomllib`` returns plain dicts without positions.  This scanner follows table
headers (``[limits]``, ``[[listeners]]``, counting array entries) and finds the line
of ``key =`` inside the right one.  It covers the shapes a configuration file uses;
a key it cannot place simply gets no line number.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ("line_of",)

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_.-]+)\s*=""")


def _unquote(name: str) -> str:
    name = name.strip()
    if len(name) >= 2 and name[0] == name[-1] and name[0] in "\"'":
        return name[1:-1]
    return name


def _split_dotted(text: str) -> list[str]:
    parts: list[str] = []
    for piece in re.findall(r"""("[^"]*"|'[^']*'|[^.]+)""", text):
        parts.append(_unquote(piece))
    return parts


def line_of(text: str, path: Sequence[str | int]) -> int | None:
    """The 1-based line defining ``path`` (e.g. ``("listeners", 1, "port")``), if found.

    For a path that names a table (``("limits",)``) the header's line is returned.
    """
    wanted_table = [p for p in path[:-1]]
    key = path[-1] if path else None
    current: list[str | int] = []
    counters: dict[tuple[str, ...], int] = {}
    header_lines: dict[tuple[str | int, ...], int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            names = _split_dotted(header.group(2))
            if header.group(1) == "[[":
                index = counters.get(tuple(names), -1) + 1
                counters[tuple(names)] = index
                current = [*names[:-1], names[-1], index]
            else:
                current = list(names)
            if tuple(current) == tuple(path):
                return number
            header_lines.setdefault(tuple(current), number)
            continue
        match = _KEY.match(line)
        if match is None:
            continue
        dotted = _split_dotted(match.group(1))
        full = [*current, *dotted]
        if full == list(path):
            return number
        # a key given as a dotted name or an inline table starting with it
        if full[: len(path)] == list(path):
            return number
        # an item of a list value: the line of the list's key
        if len(path) > len(full) and list(path[: len(full)]) == full:
            return number
        if key is not None and current == wanted_table and dotted[:1] == [key]:
            return number
    return header_lines.get(tuple(path))
