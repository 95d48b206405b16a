"""Root URLs and paths: pure functions, no I/O.

A root names its fsspec protocol in one of two ways:

* ``fsspec+<protocol>://...`` forces fsspec for any protocol, including those the
  native backends own (``fsspec+file:///srv/ftp``, ``fsspec+memory://alice``,
  ``fsspec+s3://bucket/prefix``);
* any other scheme the registry does not know (``gcs://``, ``abfs://``,
  ``sftp://``...) reaches this backend as it is.

Inside the backend every path is a ``PurePosixPath`` below the root, and
:func:`confine` is the one place that decides whether a path may be touched: ``..``
is resolved lexically and whatever ends outside the root is refused, so no caller
can climb out of a user's tree whatever it passes in.
"""

from __future__ import annotations

import errno
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import PurePath, PurePosixPath

from ..errors import PathEscapesRoot
from ..paths import absolute_parts

__all__ = ("FORCE_PREFIX", "RootURL", "confine", "not_found", "parse_root", "root_path", "to_fs_path")

#: Scheme prefix that sends any protocol to fsspec.
FORCE_PREFIX = "fsspec+"


@dataclass(frozen=True)
class RootURL:
    """A parsed root: the fsspec protocol, the URL fsspec understands, and the root
    path as this backend sees it (absolute, ``/`` + the filesystem's own path)."""

    protocol: str
    url: str
    root: PurePosixPath


def parse_root(url: str) -> tuple[str, str]:
    """``fsspec+memory://alice`` -> ("memory", "memory://alice"); ``gcs://b/p`` -> ("gcs", same).

    Refuses what a root must not have: a query or fragment (options come from the
    configuration, never from a user's root) and ``.``/``..`` components.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme:
        raise ValueError(f"not a storage URL: {url!r}")
    scheme = scheme.lower()
    protocol = scheme[len(FORCE_PREFIX):] if scheme.startswith(FORCE_PREFIX) else scheme
    if not protocol:
        raise ValueError(f"{url!r} names no fsspec protocol after {FORCE_PREFIX!r}")
    parts = urllib.parse.urlsplit(f"{protocol}://{rest}")
    if parts.query or parts.fragment or "?" in rest or "#" in rest:
        raise ValueError(f"a storage root takes no query or fragment: {url!r}")
    if any(part in (".", "..") for part in parts.path.split("/")):
        raise ValueError(f"a storage root cannot contain '.' or '..': {url!r}")
    return protocol, f"{protocol}://{rest}"


def root_path(stripped: str) -> PurePosixPath:
    """The backend's absolute root for the filesystem path fsspec made of the URL."""
    return PurePosixPath("/" + stripped.strip("/"))


def confine(path: PurePath | str, root: PurePosixPath) -> PurePosixPath:
    """``path`` normalized (``..`` resolved lexically), refused if it leaves ``root``."""
    path, parts = absolute_parts(path)
    normal = PurePosixPath("/", *parts)
    if normal != root and root not in normal.parents:
        raise PathEscapesRoot(errno.EACCES, "path outside the storage root", str(path))
    return normal


def to_fs_path(path: PurePosixPath, root_marker: str) -> str:
    """The string the filesystem expects: ``/a/b`` where it has a ``/`` root, else ``a/b``."""
    text = str(path)
    return text if root_marker == "/" else text.lstrip("/")


def not_found(path: object) -> FileNotFoundError:
    return FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
