"""Pure helpers every backend shares: path normalization and seek arithmetic.

No I/O here.  Backends that address storage by virtual path (memory, S3, fsspec)
resolve ``..`` lexically the same way, and every file handle computes a seek target
the same way; keeping one copy keeps them from drifting apart.
"""

from __future__ import annotations

import io
from pathlib import PurePath, PurePosixPath

from .errors import PathIsNotAbsolute

__all__ = ("absolute_parts", "seek_target")


def absolute_parts(path: PurePath | str) -> tuple[PurePosixPath, list[str]]:
    """(the path, its parts below ``/`` with ``..`` resolved lexically).

    ``..`` above the top stays at the top, as ``/..`` does on a disk.

    :raises PathIsNotAbsolute: for a relative path
    """
    path = PurePosixPath(path)
    if not path.is_absolute():
        raise PathIsNotAbsolute(path)
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
