"""Stat results into LIST, MLSD/MLST, NLST and MDTM text.

Storage returns stats; only the protocol formats them, so every backend lists the
same way.  Everything is UTC with fixed English month names: ``strftime("%b")`` follows
the process locale (aioftp needs a ``setlocale`` lock for this) and clients parse
English only.  These functions run once per directory entry, so tables are built at
import and each call does a handful of lookups.
"""

from __future__ import annotations

import hashlib
import stat as _stat
import time
from datetime import UTC, datetime
from time import strftime as _strftime
from typing import Any

from gateway.protocol.commands import strip_list_flags

__all__ = (
    "DEFAULT_MLSX_FACTS",
    "SIX_MONTHS",
    "format_list_date",
    "stat_mode",
    "format_list_line",
    "format_mlsx_line",
    "format_nlst_line",
    "listing_name",
    "mlsx_perm",
    "format_mdtm",
    "parse_mdtm",
    "strip_list_flags",
)

DEFAULT_MLSX_FACTS: tuple[str, ...] = ("type", "size", "modify", "create", "perm", "unique")

#: Half a Gregorian year, the "recent file" window of ``ls -l``.
SIX_MONTHS = 365.2425 * 86400 / 2
#: Timestamps up to this far in the future still count as recent: storage clocks (S3,
#: NFS) run slightly ahead of ours, and a file just uploaded should show its time.
_FUTURE_SLACK = 3600.0

_MONTHS = ("", "Jan", "Feb", "Mar", "Apr", "May", "Jun",
           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")  # fmt: skip

_TYPE_CHAR = {
    _stat.S_IFDIR: "d",
    _stat.S_IFREG: "-",
    _stat.S_IFLNK: "l",
    _stat.S_IFIFO: "p",
    _stat.S_IFSOCK: "s",
    _stat.S_IFCHR: "c",
    _stat.S_IFBLK: "b",
}


def _rwx(bits: int) -> str:
    chars = []
    for shift, special, on, off in (
        (6, 0o4000, "s", "S"),
        (3, 0o2000, "s", "S"),
        (0, 0o1000, "t", "T"),
    ):
        triple = (bits >> shift) & 7
        chars.append("r" if triple & 4 else "-")
        chars.append("w" if triple & 2 else "-")
        if bits & special:
            chars.append(on if triple & 1 else off)
        else:
            chars.append("x" if triple & 1 else "-")
    return "".join(chars)


#: Permission bits (setuid/setgid/sticky included) -> the 9 characters of ``ls -l``.
_RWX = tuple(_rwx(bits) for bits in range(0o10000))

_NAME_TABLE = str.maketrans({"\r": "\0", "\n": "\0"})


def listing_name(name: str) -> str:
    """A name as every listing shows it (LIST, NLST, MLSD, MLST, STAT): unable to end
    its line early.

    FTP refuses CR and LF in names it creates, but names made outside FTP (a local
    file, an S3 key such as ``nl\\nforged.txt``) may hold them, and a newline in a
    listing would split one entry into two, letting whoever named the file forge
    entries.  Each becomes NUL, RFC 959's stand-in for a newline in a path name.
    """
    if "\n" in name or "\r" in name:
        return name.translate(_NAME_TABLE)
    return name


def _gmtime(ts: float) -> time.struct_time:
    try:
        return time.gmtime(ts)
    except (OverflowError, OSError, ValueError):
        # Out-of-range timestamps from odd storage: show the epoch, not a failed listing.
        return time.gmtime(0)


def format_list_line(name: str, st: Any, *, now: float) -> str:
    """One ``ls -l`` line, the form FileZilla, lftp, curl and wget all parse.

    Owner and group are fixed (``ftp ftp``): real uids mean nothing to a client and
    would leak server accounts.  The date shows ``HH:MM`` for files from the last six
    months (as ``ls`` does) and the year otherwise.
    """
    mode = stat_mode(st)
    type_char = _TYPE_CHAR.get(_stat.S_IFMT(mode), "-")
    when = format_list_date(st.st_mtime, now)
    nlink = getattr(st, "st_nlink", 1) or 1
    return (
        f"{type_char}{_RWX[mode & 0o7777]} {nlink:3d} ftp ftp {st.st_size:>12} "
        f"{when} {listing_name(name)}"
    )


def stat_mode(st: Any) -> int:
    """``st_mode``; a plain file's mode for a stat result that has none (a custom
    path I/O's minimal stat object, as aioftp allows)."""
    mode: int = getattr(st, "st_mode", _REGULAR)
    return mode


_REGULAR = _stat.S_IFREG | 0o644


def format_list_date(mtime: float, now: float) -> str:
    """The date column of ``ls -l``: ``HH:MM`` for the last six months, else the year."""
    t = _gmtime(mtime)
    if now - SIX_MONTHS < mtime <= now + _FUTURE_SLACK:
        return f"{_MONTHS[t.tm_mon]} {t.tm_mday:2d} {t.tm_hour:02d}:{t.tm_min:02d}"
    return f"{_MONTHS[t.tm_mon]} {t.tm_mday:2d}  {t.tm_year}"


def format_nlst_line(name: str) -> str:
    """An NLST entry: the bare name, made unable to split into two entries."""
    return listing_name(name)


# MLSx permission strings for (is_dir, readable, writable); RFC 3659 section 7.5.5.
_PERMS = {
    (False, False, False): "",
    (False, True, False): "r",
    (False, False, True): "wadf",
    (False, True, True): "rwadf",
    (True, False, False): "",
    (True, True, False): "el",
    (True, False, True): "cmpdf",
    (True, True, True): "elcmpdf",
}


def mlsx_perm(is_dir: bool, readable: bool, writable: bool) -> str:
    """The ``perm`` fact from the two rights the user model knows.

    Files: r (RETR) if readable; w a d f (STOR, APPE, DELE, RNFR) if writable.
    Directories: e l (CWD, LIST) if readable; c m p d f (create, MKD, purge, RMD,
    rename) if writable.
    """
    return _PERMS[bool(is_dir), bool(readable), bool(writable)]


def _unique(st: Any, key: str) -> str:
    ino = getattr(st, "st_ino", 0)
    if ino:
        return f"{getattr(st, 'st_dev', 0) or 0:x}g{ino:x}"
    # Object stores have no inode; a stable hash beats Python's per-process hash().
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8)
    return digest.hexdigest()


def format_mlsx_line(
    name: str,
    st: Any,
    *,
    facts: tuple[str, ...] = DEFAULT_MLSX_FACTS,
    perm: str | None = None,
    unique_key: str | None = None,
) -> str:
    """An RFC 3659 fact line: ``type=file;size=1;modify=...;perm=r;unique=...; name``.

    ``perm`` (see :func:`mlsx_perm`) is left out when None, because the caller may not
    know the user's rights.  ``unique`` comes from st_dev/st_ino; when storage has no
    inode it is a hash of ``unique_key`` (default: the name; pass the full virtual path
    to keep same-named entries of different directories apart).
    """
    is_dir = _stat.S_ISDIR(stat_mode(st))
    parts = []
    for fact in facts:
        if fact == "type":
            parts.append("type=dir;" if is_dir else "type=file;")
        elif fact == "size":
            parts.append(f"size={st.st_size};")
        elif fact == "modify":
            parts.append(f"modify={format_mdtm(st.st_mtime)};")
        elif fact == "create":
            # the birth time where storage keeps one, else the inode change time
            # (what aioftp reports); storage without either leaves the fact out
            created = getattr(st, "st_birthtime", None) or getattr(st, "st_ctime", None)
            if created is not None:
                parts.append(f"create={format_mdtm(created)};")
        elif fact == "perm":
            if perm is not None:
                parts.append(f"perm={perm};")
        elif fact == "unique":
            parts.append(f"unique={_unique(st, name if unique_key is None else unique_key)};")
    parts.append(" ")
    parts.append(listing_name(name))
    return "".join(parts)


def format_mdtm(mtime: float) -> str:
    """``YYYYMMDDHHMMSS`` in UTC (RFC 3659 time-val without the optional fraction)."""
    t = _gmtime(mtime)
    if t.tm_year >= 1000:  # strftime is the fastest, but does not zero-pad %Y
        return _strftime("%Y%m%d%H%M%S", t)
    return (
        f"{t.tm_year:04d}{t.tm_mon:02d}{t.tm_mday:02d}{t.tm_hour:02d}{t.tm_min:02d}{t.tm_sec:02d}"
    )


def parse_mdtm(s: str) -> float:
    """Parse an RFC 3659 time-val (``YYYYMMDDHHMMSS[.sss]``, UTC) into a timestamp.

    Strict, since the value comes from a client (MFMT): exactly 14 ASCII digits, an
    optional fraction of ASCII digits, a real calendar date.  A leap second (``60``)
    is accepted as the next second.
    """
    whole, dot, fraction = s.partition(".")
    if len(whole) != 14 or not (whole.isascii() and whole.isdigit()):
        raise ValueError(f"bad time-val {s!r}: expected YYYYMMDDHHMMSS")
    if dot and not (fraction and fraction.isascii() and fraction.isdigit()):
        raise ValueError(f"bad time-val {s!r}: bad fraction")
    second = int(whole[12:14])
    leap = second == 60
    try:
        dt = datetime(
            int(whole[0:4]), int(whole[4:6]), int(whole[6:8]),
            int(whole[8:10]), int(whole[10:12]), 59 if leap else second,
            tzinfo=UTC,
        )  # fmt: skip
    except ValueError as exc:
        raise ValueError(f"bad time-val {s!r}: {exc}") from None
    ts = dt.timestamp() + (1 if leap else 0)
    if fraction:
        ts += int(fraction) / 10 ** len(fraction)
    return ts


