"""Paths to bucket/key and back: pure functions, no I/O.

A path seen by :class:`~backends.s3.pathio.S3PathIO` is ``/bucket/key/parts``: the
first component names the bucket, the rest is the object key joined by ``/``.
Directories are key prefixes.  An empty directory persists as a *marker*: a
zero-byte object whose key is the directory's key followed by ``/`` (the convention
of the S3 console, rclone and s3fs), so that ``MKD`` outlives the session.
"""

from __future__ import annotations

import errno
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import PurePosixPath

from ..paths import absolute_parts

__all__ = (
    "MAX_KEY_BYTES",
    "Location",
    "child_name",
    "locate",
    "parse_url",
    "path_of",
)

#: S3 refuses longer keys (a directory marker adds one byte: counted by the caller).
MAX_KEY_BYTES = 1024


@dataclass(frozen=True)
class Location:
    """Where a path lives: ``bucket`` is "" for the path ``/`` (the list of buckets)
    and ``key`` is "" for a bucket's root."""

    bucket: str
    key: str

    @property
    def prefix(self) -> str:
        """The prefix of every key below this path as a directory."""
        return self.key + "/" if self.key else ""

    @property
    def marker(self) -> str:
        """The key of this directory's marker object."""
        return self.key + "/"

    def below(self, key: str) -> str:
        """The part of ``key`` after this directory's prefix."""
        return key[len(self.prefix) :]


def locate(path: PurePosixPath | str) -> Location:
    """``/bucket/a/b`` → Location("bucket", "a/b").

    ``..`` is resolved lexically, as the memory backend does; an absolute path is
    required because a relative one would have no bucket.
    """
    path, parts = absolute_parts(path)
    if not parts:
        return Location("", "")
    key = "/".join(parts[1:])
    try:
        parts[0].encode("utf-8")
        key_bytes = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        # a name with bytes that are not UTF-8 (kept as surrogates by the protocol):
        # S3 keys and bucket names are UTF-8, so no request could ever carry it
        raise OSError(errno.EILSEQ, "name is not valid UTF-8, as S3 keys must be", str(path)) from None
    if key_bytes + 1 > MAX_KEY_BYTES:
        raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), str(path))
    return Location(parts[0], key)


def path_of(bucket: str, key: str = "") -> PurePosixPath:
    """The path of ``key`` in ``bucket`` (trailing ``/`` of a prefix dropped)."""
    key = key.rstrip("/")
    return PurePosixPath("/", bucket, key) if key else PurePosixPath("/", bucket)


def child_name(directory: Location, key_or_prefix: str) -> str | None:
    """The entry name a listed key or common prefix gives in ``directory``.

    None for what is not an entry: the directory's own marker and keys with empty
    path components (``a//b``), which no FTP path can address.
    """
    rest = directory.below(key_or_prefix)
    name = rest[:-1] if rest.endswith("/") else rest
    if not name or "/" in name or name in (".", ".."):
        return None
    return name


def parse_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix/`` → ("bucket", "some/prefix")."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() != "s3":
        raise ValueError(f"not an s3:// URL: {url!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"an s3:// root takes no query or fragment: {url!r}")
    bucket = parts.netloc
    if not bucket or "@" in bucket or ":" in bucket:
        raise ValueError(f"an s3:// root needs a bucket name: {url!r}")
    prefix = "/".join(part for part in parts.path.split("/") if part)
    if any(part in (".", "..") for part in prefix.split("/")):
        raise ValueError(f"an s3:// root cannot contain '.' or '..': {url!r}")
    return bucket, prefix
