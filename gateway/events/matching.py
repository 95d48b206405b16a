"""Which actions an event goes to: by kind, by account, by virtual path.

Path patterns are globs over the virtual path: ``*`` and ``?`` stay within one path
part, ``**`` crosses parts (``/inbox/*`` is a file directly in /inbox, ``/inbox/**``
anything below it), ``[abc]`` a character class.  An empty list matches everything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

__all__ = ("EVENT_KINDS", "Selector", "glob_regex", "path_matches")

EVENT_KINDS = ("upload", "download", "delete", "rename", "mkdir", "rmdir", "login", "login_failed")


@lru_cache(maxsize=256)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """The compiled regular expression of a path glob (whole-path match)."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", i + 2)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = pattern[i + 1:end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def path_matches(patterns: Iterable[str], path: str | None) -> bool:
    patterns = tuple(patterns)
    if not patterns:
        return True
    if path is None:
        return False
    return any(glob_regex(pattern).match(path) for pattern in patterns)


@dataclass(frozen=True)
class Selector:
    """The events one action takes: kinds ("*" for all), accounts and path globs
    (empty: any).  A rename matches by its source or its destination."""

    events: tuple[str, ...] = ("upload",)
    accounts: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()

    def matches(self, kind: str, account: str | None, path: str | None,
                target: str | None = None) -> bool:
        if "*" not in self.events and kind not in self.events:
            return False
        if self.accounts and account not in self.accounts:
            return False
        if not self.paths:
            return True
        return path_matches(self.paths, path) or (target is not None and path_matches(self.paths, target))
