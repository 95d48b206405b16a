"""File checksums on the control connection: HASH, RANG, OPTS HASH and the legacy
XCRC/XMD5/XSHA* commands, as pure functions (no I/O).

``HASH`` follows draft-bryan-ftpext-hash-02: the session's algorithm (``OPTS HASH``,
marked with ``*`` in FEAT) hashes the file as a TYPE I download would deliver it, and
the reply is ``213 <algorithm> <start>-<end> <hex> <pathname>`` with an inclusive byte
range; ``RANG <start> <end>`` (draft-bryan-ftp-range, inclusive end, ``RANG 1 0``
resets) right before it hashes part of the file.

The legacy commands (GlobalSCAPE's XCRC, then XMD5, XSHA1, XSHA256, XSHA512, as
ProFTPD's mod_digest, Serv-U or Cerberus answer them) take ``<pathname> [<start>
<end>]`` with an exclusive end, the name quoted when it contains spaces followed by
positions, and reply ``250 <HEX>`` in upper case.

The digests themselves (hashlib's, and CRC-32 from zlib) are computation, not I/O;
they live here so the protocol and its tests share one definition.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol, TypeAlias

__all__ = (
    "ALGORITHMS",
    "DEFAULT_ALGORITHM",
    "DEFAULT_UPLOAD_CHECKSUMS",
    "LEGACY_COMMANDS",
    "Algorithm",
    "WHOLE_FILE",
    "ByteRange",
    "Crc32",
    "Data",
    "Digest",
    "algorithm_named",
    "feat_hash_line",
    "format_hash_reply",
    "format_legacy_reply",
    "parse_legacy_argument",
    "parse_rang",
    "rang_range",
    "range_after",
    "session_feat_line",
)


#: Bytes a digest takes (a view of a receive buffer, a block read from storage).
Data: TypeAlias = bytes | bytearray | memoryview


class Digest(Protocol):
    """What hashlib's objects offer, and :class:`Crc32` too."""

    def update(self, data: Data, /) -> None: ...

    def hexdigest(self) -> str: ...


class Crc32:
    """CRC-32 (ISO-HDLC, as zlib, PKZIP and XCRC compute it) with hashlib's face.
    zlib releases the GIL for large buffers, as hashlib does."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def update(self, data: Data, /) -> None:
        self.value = zlib.crc32(data, self.value)

    def hexdigest(self) -> str:
        return f"{self.value:08x}"


@dataclass(frozen=True, slots=True)
class Algorithm:
    """One algorithm: ``name`` as HASH and FEAT spell it (the IANA "Hash Function
    Textual Names", CRC32 as servers commonly add it) and ``key`` as storage keeps it
    (``backends.checksums``)."""

    name: str
    key: str
    new: Callable[[], Digest]


#: Every algorithm served, in FEAT order.
ALGORITHMS: tuple[Algorithm, ...] = (
    Algorithm("SHA-256", "sha256", hashlib.sha256),
    Algorithm("SHA-512", "sha512", hashlib.sha512),
    Algorithm("SHA-1", "sha1", hashlib.sha1),
    Algorithm("MD5", "md5", hashlib.md5),
    Algorithm("CRC32", "crc32", Crc32),
)
#: No weaker than SHA-1 (the draft's rule for the default).
DEFAULT_ALGORITHM = ALGORITHMS[0]
#: What an upload computes as it streams unless told otherwise (algorithm keys):
#: SHA-256, what HASH answers by default.  The others cost CPU on every upload (CRC-32
#: a third more, MD5 and SHA-512 as much again): computed when first asked (XCRC,
#: HASH after OPTS HASH...), then kept with the file; S3 keeps the CRC-32 its parts'
#: checksums give for free.
DEFAULT_UPLOAD_CHECKSUMS: tuple[str, ...] = ("sha256",)

_BY_NAME: dict[str, Algorithm] = {}
for _algorithm in ALGORITHMS:
    for _spelling in (_algorithm.name, _algorithm.key):
        _BY_NAME[_spelling.upper()] = _algorithm
_BY_NAME["CRC-32"] = ALGORITHMS[4]

#: Legacy verb (lowercase) -> its algorithm.  XSHA is mod_digest's alias of XSHA1.
LEGACY_COMMANDS: dict[str, Algorithm] = {
    "xcrc": ALGORITHMS[4],
    "xmd5": ALGORITHMS[3],
    "xsha": ALGORITHMS[2],
    "xsha1": ALGORITHMS[2],
    "xsha256": ALGORITHMS[0],
    "xsha512": ALGORITHMS[1],
}


def algorithm_named(name: str) -> Algorithm | None:
    """The algorithm a client or a setting names (``SHA-256``, ``sha256``, case
    insensitively); None for an unknown one."""
    return _BY_NAME.get(name.strip().upper())


# --------------------------------------------------------------------------- FEAT


def feat_hash_line(selected: Algorithm = DEFAULT_ALGORITHM) -> str:
    """``HASH SHA-256*;SHA-512;SHA-1;MD5;CRC32``: every algorithm, the selected starred."""
    names = (a.name + ("*" if a is selected else "") for a in ALGORITHMS)
    return "HASH " + ";".join(names)


def session_feat_line(line: str, selected: Algorithm) -> str:
    """A FEAT line as one session should see it: its own selection starred on HASH's."""
    if line.startswith("HASH "):
        return feat_hash_line(selected)
    return line


# --------------------------------------------------------------------------- ranges


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes ``start`` to ``start + count`` (exclusive); ``count`` None: to the end."""

    start: int = 0
    count: int | None = None

    @property
    def whole(self) -> bool:
        """Whether this is every byte of any file."""
        return self.start == 0 and self.count is None

    def covers(self, size: int) -> bool:
        """Whether this is every byte of a file of ``size`` bytes."""
        return self.start == 0 and (self.count is None or self.count >= size)


WHOLE_FILE = ByteRange()
_MAX_DIGITS = 19  # a signed 64-bit offset


def _offset(text: str) -> int:
    if not text or len(text) > _MAX_DIGITS or not (text.isascii() and text.isdigit()):
        raise ValueError(f"bad byte position {text!r}")
    return int(text)


def parse_rang(argument: str) -> tuple[int, int] | None:
    """``RANG <start> <end>`` (inclusive end): the pair, or None for ``RANG 1 0``, the
    draft's reset.  ValueError for anything else, a start after the end included."""
    parts = argument.split()
    if len(parts) != 2:
        raise ValueError("RANG takes a start point and an end point")
    start, end = _offset(parts[0]), _offset(parts[1])
    if (start, end) == (1, 0):
        return None
    if start > end:
        raise ValueError("the start point is after the end point")
    return start, end


def rang_range(pair: tuple[int, int] | None) -> ByteRange:
    """The bytes a RANG selection names."""
    if pair is None:
        return WHOLE_FILE
    start, end = pair
    return ByteRange(start, end - start + 1)


#: What a command does to a pending RANG selection: HASH uses it, the data-connection
#: setup keeps it for the command after; a transfer is refused (this server ranges
#: HASH only, and a whole file where a range was asked for would be wrong bytes); any
#: other command drops it (the draft: RANG must come right before its command).
RangeEffect = Literal["keep", "refuse", "drop"]
_RANGE_KEEPERS = frozenset({"rang", "hash", "pasv", "epsv", "port", "eprt"})
_RANGE_REFUSERS = frozenset({"retr", "stor", "appe", "stou"})


def range_after(verb: str) -> RangeEffect:
    """What ``verb`` (lowercase) does to a RANG selection made before it."""
    if verb in _RANGE_KEEPERS:
        return "keep"
    if verb in _RANGE_REFUSERS:
        return "refuse"
    return "drop"


def parse_legacy_argument(argument: str) -> tuple[str, ByteRange]:
    """``XCRC <pathname> [<start> <end>]``: (pathname, bytes), the end exclusive.

    A pathname with spaces followed by positions must be quoted (``"my file" 0 5``);
    unquoted, two trailing numbers after a name are positions, anything else is all
    pathname (``report 2024`` names one file).  ValueError for a quote that is never
    closed, text after a quoted name that is not two positions, or an end before the
    start.
    """
    text = argument.strip(" ")
    if text.startswith('"'):
        close = text.find('"', 1)
        if close < 0:
            raise ValueError("the quoted pathname is not closed")
        path, tail = text[1:close], text[close + 1 :].split()
        if not tail:
            return path, WHOLE_FILE
        if len(tail) != 2:
            raise ValueError("positions are a start and an end")
        return path, _positions(tail[0], tail[1])
    parts = text.rsplit(" ", 2)
    if len(parts) == 3 and parts[0].strip(" ") and all(_digits(p) for p in parts[1:]):
        return parts[0].rstrip(" "), _positions(parts[1], parts[2])
    return argument, WHOLE_FILE


def _digits(text: str) -> bool:
    return bool(text) and text.isascii() and text.isdigit()


def _positions(start_text: str, end_text: str) -> ByteRange:
    start, end = _offset(start_text), _offset(end_text)
    if end < start:
        raise ValueError("the end position is before the start position")
    return ByteRange(start, end - start)


# --------------------------------------------------------------------------- replies


def format_hash_reply(algorithm: Algorithm, start: int, count: int, digest: str, pathname: str) -> str:
    """The 213 text: ``SHA-256 0-99 <hex> <pathname>`` (an inclusive range; an empty
    file or range, which the draft's grammar cannot express, is ``<start>-<start>``)."""
    end = start + count - 1 if count else start
    return f"{algorithm.name} {start}-{end} {digest.lower()} {pathname}"


def format_legacy_reply(digest: str) -> str:
    """The 250 text of XCRC/XMD5/XSHA*: the digest alone, in upper case."""
    return digest.upper()
