"""Which file names an account may create or see, and how large its uploads may grow.

Pure: patterns and decisions about virtual paths, no I/O.  The server applies them
(``gateway.server.filepolicy``): before a command runs, in listings, and while an
upload's bytes are written.

The patterns are shell patterns (``fnmatch``: ``*``, ``?``, ``[abc]``), matched
without regard to case unless ``case_sensitive`` (``*.exe`` also refuses
``SETUP.EXE``).  A pattern without ``/`` is matched against one name (the last part
of a path, and for denied names every directory on the way too); a pattern with
``/`` is matched against the whole virtual path (``/incoming/*.tmp``; its ``*``
crosses ``/`` as fnmatch's does).

* **Denied names** (``deny``): no file or directory of such a name may be created
  (STOR, APPE, STOU, MKD, RNTO: 553), nor anything below a directory of such a name.
  With ``hide_denied`` they are also left out of listings, and naming one in any
  command answers as for a name that does not exist (550), so a hidden name is
  neither visible nor reachable.  Without it they stay visible and readable: the
  rule is about what this account adds.
* **Allowed names** (``allow``): when any is given, a *file* may be created only
  under a name that matches one (directories are not constrained: ``*.jpg`` must not
  forbid the dated folders a camera makes).  Denied names win over allowed ones.
* **Maximum file size** (``max_file_size``): an upload may not make a file larger.
  Refused before any byte flows when the client announced the size (``ALLO``); cut
  off with 552 when the bytes pass it, and the upload is rolled back.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

__all__ = ("FileRules", "NoFileRules", "describe_size", "validate_pattern")

_MAX_PATTERN = 1024


def validate_pattern(pattern: str) -> str:
    """A pattern as given, refused when empty or holding control characters.

    :raises ValueError: saying why
    """
    if not isinstance(pattern, str) or not pattern.strip():
        raise ValueError(f"bad name pattern {pattern!r}: expected a pattern such as *.exe")
    if len(pattern) > _MAX_PATTERN:
        raise ValueError(f"bad name pattern {pattern[:32]!r}...: longer than {_MAX_PATTERN}")
    if any(ord(c) < 32 or c == "\x7f" for c in pattern):
        raise ValueError(f"bad name pattern {pattern!r}: control characters are not allowed")
    if "/" in pattern and not pattern.startswith("/"):
        raise ValueError(
            f"bad name pattern {pattern!r}: a pattern with / is matched against the whole "
            "virtual path and must start with /"
        )
    return pattern


def _patterns(values: Iterable[str] | str | None) -> tuple[str, ...]:
    if values is None:
        return ()
    if isinstance(values, str):
        values = (values,)
    out: list[str] = []
    for value in values:
        validate_pattern(value)
        if value not in out:
            out.append(value)
    return tuple(out)


class _Matcher:
    """Name patterns and path patterns compiled into one regex each."""

    __slots__ = ("names", "paths")

    def __init__(self, patterns: tuple[str, ...], case_sensitive: bool) -> None:
        flags = 0 if case_sensitive else re.IGNORECASE
        names = [fnmatch.translate(p) for p in patterns if "/" not in p]
        paths = [fnmatch.translate(p) for p in patterns if "/" in p]
        self.names = re.compile("|".join(names), flags) if names else None
        self.paths = re.compile("|".join(paths), flags) if paths else None

    def name(self, name: str) -> bool:
        return self.names is not None and self.names.match(name) is not None

    def path(self, path: str) -> bool:
        return self.paths is not None and self.paths.match(path) is not None

    def __bool__(self) -> bool:
        return self.names is not None or self.paths is not None


@dataclass(frozen=True)
class FileRules:
    """An account's file-name rules and upload size limit (see the module docstring)."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    hide_denied: bool = False
    case_sensitive: bool = False
    max_file_size: int | None = None
    _allow: _Matcher = field(init=False, repr=False, compare=False)
    _deny: _Matcher = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "allow", _patterns(self.allow))
        object.__setattr__(self, "deny", _patterns(self.deny))
        if self.max_file_size is not None:
            if isinstance(self.max_file_size, bool) or not isinstance(self.max_file_size, int):
                raise ValueError(f"bad max_file_size {self.max_file_size!r}: expected bytes")
            if self.max_file_size < 0:
                raise ValueError(f"bad max_file_size {self.max_file_size!r}: must be >= 0")
        object.__setattr__(self, "_allow", _Matcher(self.allow, self.case_sensitive))
        object.__setattr__(self, "_deny", _Matcher(self.deny, self.case_sensitive))

    @property
    def active(self) -> bool:
        """Whether anything is restricted (without it, nothing needs checking)."""
        return bool(self.allow or self.deny or self.max_file_size is not None)

    @property
    def hides(self) -> bool:
        """Whether some names are hidden from this account."""
        return self.hide_denied and bool(self.deny)

    # -- decisions ------------------------------------------------------------------------
    def denied(self, path: PurePosixPath | str) -> str | None:
        """The denied name or path ``path`` is, or lies below; None when none applies."""
        if not self._deny:
            return None
        virtual = PurePosixPath(path)
        deny = self._deny
        if deny.paths is not None:
            for prefix in _prefixes(virtual):
                if deny.path(prefix):
                    return prefix
        if deny.names is not None:
            for part in virtual.parts[1:] if virtual.is_absolute() else virtual.parts:
                if deny.name(part):
                    return part
        return None

    def hidden(self, path: PurePosixPath | str) -> bool:
        """Whether ``path`` is invisible and unreachable for this account."""
        return self.hides and self.denied(path) is not None

    def hidden_entry(self, directory: PurePosixPath, name: str) -> bool:
        """Whether the entry ``name`` of a listed ``directory`` is hidden (the directory
        itself was checked before it was listed, so only the entry is matched)."""
        if not self.hides:
            return False
        deny = self._deny
        if deny.name(name):
            return True
        return deny.paths is not None and deny.path(str(directory / name))

    def creation_refusal(self, path: PurePosixPath | str, *, is_dir: bool) -> str | None:
        """Why a new file (or directory) at ``path`` may not be created; None when it may."""
        virtual = PurePosixPath(path)
        denied = self.denied(virtual)
        if denied is not None:
            return f"file name not allowed: {denied!r} matches a denied name pattern"
        if is_dir or not self._allow:
            return None
        if self._allow.name(virtual.name) or self._allow.path(str(virtual)):
            return None
        return "file name not allowed: it matches none of the allowed name patterns"

    def size_refusal(self, size: int) -> str | None:
        """Why a file of ``size`` bytes may not be stored; None when it may."""
        limit = self.max_file_size
        if limit is None or size <= limit:
            return None
        return f"exceeded storage allocation: files may be at most {describe_size(limit)}"


#: The rules of an account without any (what a user object without rules gets).
NoFileRules = FileRules()


def describe_size(size: int) -> str:
    """``104857600 bytes (100 MiB)``: exact, and readable."""
    for unit, factor in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size} bytes ({size // factor} {unit})"
    return f"{size} bytes"


def _prefixes(path: PurePosixPath) -> list[str]:
    """``/a``, ``/a/b``, ``/a/b/c`` for ``/a/b/c``."""
    parts = path.parts
    if not path.is_absolute():
        parts = ("/", *parts)
    return [str(PurePosixPath(*parts[: i + 1])) for i in range(1, len(parts))]
