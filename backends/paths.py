"""Pure helpers every backend shares: path normalization and seek arithmetic.

No I/O here.  Backends that address storage by virtual path (memory, S3, fsspec)
resolve ``..`` lexically the same way, and every file handle computes a seek target
the same way; keeping one copy keeps them from drifting apart.
"""

from __future__ import annotations

import io
from pathlib import PurePath, PurePosixPath

__all__ = ("absolute_parts", "seek_target")

_ORIGIN = PurePosixPath("/")


def absolute_parts(path: PurePath | str) -> tuple[PurePosixPath, list[str]]:
    """(the path made absolute, its parts below ``/`` with ``..`` resolved lexically).

    A relative path is relative to the storage's own origin, ``/`` (as a relative
    path on disk is relative to the current directory): aioftp's ``User()`` serves
    ``Path(".")`` by default.  ``..`` above the top stays at the top, as ``/..``
    does on a disk, so a relative path never reaches above the origin either.
    """
    path = PurePosixPath(path)
    if not path.is_absolute():
        path = _ORIGIN / path
    parts: list[str] = []
    for part in path.parts[1:]:
        if part == "..":
            if parts:
                parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return path, parts


def seek_target(offset: int, whence: int, current: int, end: int) -> int:
    """Where ``seek(offset, whence)`` lands from ``current`` in something ``end`` long.

    The target is not checked against zero or ``end``: what is allowed differs
    between readers and writers, so each handle checks for itself.
    """
    if whence == io.SEEK_SET:
        return offset
    if whence == io.SEEK_CUR:
        return current + offset
    if whence == io.SEEK_END:
        return end + offset
    raise ValueError(f"invalid whence {whence!r}")
