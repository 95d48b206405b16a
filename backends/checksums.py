"""Checksums kept with files: what a backend stores, and a memory for where it cannot.

An upload's checksums are computed by the protocol while the bytes stream through
(no second read) and handed to storage with the file; storage keeps them so that a
later HASH/XCRC is answered without reading the file again.  The rule every backend
keeps: a stored checksum is never stale.  Whatever changes a file's bytes replaces
or drops its checksums; whatever keeps the bytes (a rename) keeps them.

Values are lowercase hex digests of the whole file, by algorithm key (``ALGORITHMS``).
This module is pure bookkeeping: no I/O.
"""

from __future__ import annotations

import functools
import string
import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping
from typing import NamedTuple

__all__ = (
    "ALGORITHMS",
    "ChecksumMemo",
    "Stored",
    "clean_values",
    "crc32_combine",
    "decode_record",
    "encode_record",
)

#: Algorithm key -> length of its hex digest.
ALGORITHMS: Mapping[str, int] = {
    "sha256": 64,
    "sha512": 128,
    "sha1": 40,
    "md5": 32,
    "crc32": 8,
}

_HEX = frozenset(string.hexdigits.lower())
#: Version tag of the record format below (an attribute value, a metadata header).
_MAGIC = "gateway-checksums/1"


class Stored(NamedTuple):
    """Checksums valid for a file as it is now (maybe none), and its size."""

    size: int
    values: Mapping[str, str]


def clean_values(values: Mapping[str, str]) -> dict[str, str]:
    """Only well-formed entries (a known algorithm, a hex digest of its length):
    anything else found in storage (another program's attribute, a truncated value)
    is ignored rather than answered."""
    clean = {}
    for name, digest in values.items():
        key = name.lower()
        digest = digest.strip().lower()
        if ALGORITHMS.get(key) == len(digest) and _HEX.issuperset(digest):
            clean[key] = digest
    return clean


def encode_record(values: Mapping[str, str], stamp: Mapping[str, int]) -> bytes:
    """One line: the format tag, the stamp (what the file looked like when the values
    were computed: size, modification time...) and the values, as ``key=value``."""
    fields = [f"{key}={value}" for key, value in stamp.items()]
    fields += [f"{key}={value}" for key, value in sorted(clean_values(values).items())]
    return " ".join([_MAGIC, *fields]).encode("ascii")


def decode_record(raw: bytes) -> tuple[dict[str, int], dict[str, str]] | None:
    """(stamp, values) from :func:`encode_record`'s line; None when it is not one."""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return None
    magic, *fields = text.split(" ")
    if magic != _MAGIC:
        return None
    stamp: dict[str, int] = {}
    values: dict[str, str] = {}
    for field in fields:
        key, sep, value = field.partition("=")
        if not sep:
            return None
        if key in ALGORITHMS:
            values[key] = value
        elif value.isdigit():
            stamp[key] = int(value)
        else:
            return None
    return stamp, clean_values(values)


_CRC32_POLY = 0xEDB88320  # reflected, as zlib's crc32


def _gf2_times(matrix: tuple[int, ...], vector: int) -> int:
    total = 0
    row = 0
    while vector:
        if vector & 1:
            total ^= matrix[row]
        vector >>= 1
        row += 1
    return total


def _gf2_compose(outer: tuple[int, ...], inner: tuple[int, ...]) -> tuple[int, ...]:
    """The operator applying ``inner``, then ``outer``."""
    return tuple(_gf2_times(outer, column) for column in inner)


#: Appending one zero bit to a CRC-32 register, as a 32x32 GF(2) matrix (by columns).
_ONE_ZERO_BIT = (_CRC32_POLY, *(1 << row for row in range(31)))
_ONE_ZERO_BYTE = _ONE_ZERO_BIT
for _ in range(3):
    _ONE_ZERO_BYTE = _gf2_compose(_ONE_ZERO_BYTE, _ONE_ZERO_BYTE)


@functools.lru_cache(maxsize=64)
def _zero_bytes(length: int) -> tuple[int, ...]:
    """The operator appending ``length`` zero bytes (parts mostly share one length,
    so it is built once, by squaring)."""
    result: tuple[int, ...] | None = None
    power = _ONE_ZERO_BYTE
    while length:
        if length & 1:
            result = power if result is None else _gf2_compose(power, result)
        length >>= 1
        if length:
            power = _gf2_compose(power, power)
    assert result is not None
    return result


def crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """The CRC-32 of A + B from the CRC-32 of A, that of B and B's length (zlib's
    ``crc32_combine``, which Python's zlib does not expose): S3 uploads get the whole
    object's CRC-32 from the checksums their parts carry anyway, with no byte hashed
    twice."""
    if length2 <= 0:
        return crc1
    return _gf2_times(_zero_bytes(length2), crc1) ^ crc2


class ChecksumMemo:
    """Checksums this process knows by file identity, bounded in number (oldest go).

    For stores that cannot keep them with the file (a local filesystem without
    extended attributes, an S3 multipart upload whose metadata is fixed before its
    bytes are known).  The identity must change whenever the content does (on disk:
    device, inode, size and modification time; on S3: the key and its ETag), so an
    entry can be outdated but never wrong: it is simply not found any more.
    Thread-safe: local disk may be served from worker threads.
    """

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, dict[str, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, identity: Hashable) -> dict[str, str]:
        with self._lock:
            values = self._entries.get(identity)
            if values is None:
                return {}
            self._entries.move_to_end(identity)
            return dict(values)

    def add(self, identity: Hashable, values: Mapping[str, str]) -> None:
        """Remember ``values`` for ``identity``, merged with what is known already."""
        clean = clean_values(values)
        if not clean or self.max_entries <= 0:
            return
        with self._lock:
            known = self._entries.pop(identity, {})
            known.update(clean)
            self._entries[identity] = known
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def move(self, old: Hashable, new: Hashable) -> None:
        """The content known as ``old`` is now known as ``new`` (a copy elsewhere)."""
        with self._lock:
            values = self._entries.get(old)
        if values:
            self.add(new, values)

    def forget(self, identities: Iterable[Hashable]) -> None:
        with self._lock:
            for identity in identities:
                self._entries.pop(identity, None)

    def __len__(self) -> int:
        return len(self._entries)
