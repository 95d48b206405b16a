"""What an FTP server says to a client, turned into values: no sockets, no clock.

Replies and listings are the least standardized part of FTP; every odd server
format ends up here, so these functions are tested (and fuzzed) without a network.
Every failure to understand the peer is a ``ValueError`` (``UnicodeDecodeError``
included), so callers have one thing to catch when trying several parsers.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from pathlib import PurePosixPath
from typing import TypedDict

from gateway.common import Code

__all__ = (
    "BasicListInfo",
    "Info",
    "ListInfo",
    "MultilineReply",
    "NotAnEntry",
    "ReplySequenceError",
    "UnixListInfo",
    "parse_reply_line",
    "parse_pasv_response",
    "parse_epsv_response",
    "choose_passive_host",
    "parse_directory_response",
    "parse_unix_mode",
    "parse_ls_date",
    "format_date_time",
    "parse_list_line_unix",
    "parse_list_line_windows",
    "parse_mlsx_line",
)

Info = dict[str, object]


class BasicListInfo(TypedDict, total=False):
    """What any listing line tells about an entry (aioftp's name for it).

    Values are strings as the server sent them (``size`` too); ``type`` is
    ``"file"``, ``"dir"`` or ``"unknown"`` for LIST lines, and whatever the server
    says for MLSD (``"cdir"``, ``"OS.unix=slink:..."``, ...).
    """

    type: str
    size: str
    modify: str
    create: str


# Keys with a dot cannot be class attributes, hence the functional form.
_UnixFacts = TypedDict(
    "_UnixFacts",
    {"unix.mode": int, "unix.links": str, "unix.owner": str, "unix.group": str},
    total=False,
)


class UnixListInfo(BasicListInfo, _UnixFacts, total=False):
    """An ``ls -l`` line's facts; ``link_dst`` is a symlink's target."""

    link_dst: str


#: what ``Client.list`` and ``Client.stat`` describe an entry with
ListInfo = BasicListInfo | UnixListInfo


class NotAnEntry(ValueError):
    """A listing line that was understood but names no entry: ``.`` or ``..``.

    A ``ValueError`` so callers that try several parsers treat it like any line
    they cannot use, while a lister can tell it from garbage and skip it quietly.
    """


class ReplySequenceError(ValueError):
    """A multi-line reply interrupted by what looks like another reply's last line.

    ``code`` is the code the reply started with, ``received`` the intruding one.
    """

    def __init__(self, code: Code, received: Code, info: list[str]) -> None:
        super().__init__(f"reply {code} interrupted by a {received} line: {info!r}")
        self.code = code
        self.received = received
        self.info = info


_MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}


# --- replies -----------------------------------------------------------------


def parse_reply_line(line: str) -> tuple[Code, str]:
    """Split a reply line into its code and the rest, the separator kept.

    The separator (``"-"`` or ``" "``) stays on the rest because it is what tells a
    multi-line reply from a last line; aioftp's info lists keep it the same way.
    """
    line = line.rstrip("\r\n")
    return Code(line[:3]), line[3:]


class MultilineReply:
    """Collects the lines of one reply (RFC 959 4.2) until it is complete.

    The first line is ``xyz-text`` for a multi-line reply; the reply ends at the
    first line that starts with the same ``xyz`` followed by a space (or nothing).
    Lines in between are text (`` 123 foo``, ``226-bar``), except one that starts
    with another code and a space: that is the shape of a last line, so the server
    has mixed up its replies, and waiting for ``xyz `` would wait forever (RFC 959
    asks servers to indent such text lines).  ``ReplySequenceError`` says so.
    """

    def __init__(self) -> None:
        self.code: Code | None = None
        self.info: list[str] = []
        self.done = False

    def feed(self, code: Code, rest: str) -> bool:
        """Add one line (as split by ``parse_reply_line``); True once complete."""
        if self.done:
            raise ValueError("reply already complete")
        if self.code is None:
            if not (len(code) == 3 and code.isdigit()):
                raise ValueError(f"malformed reply line: {code + rest!r}")
            self.code = code
            self.info.append(rest)
            self.done = not rest.startswith("-")
            return self.done
        if code == self.code and rest[:1] in ("-", " ", ""):
            self.info.append(rest)
            self.done = not rest.startswith("-")
        elif len(code) == 3 and code.isdigit() and rest[:1] in (" ", ""):
            self.info.append(code + rest)
            raise ReplySequenceError(self.code, code, self.info)
        else:
            self.info.append(code + rest)
        return self.done


# --- passive mode, PWD ---------------------------------------------------------

_PASV_NUMBERS = re.compile(
    r"(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,"
    r"\s*(\d{1,3})\s*,\s*(\d{1,3})"
)
_EPSV = re.compile(r"\(([!-~])\1\1(\d{1,5})\1\)")


def parse_pasv_response(s: str) -> tuple[str, int]:
    """``227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)`` into ``(ip, port)``.

    The parentheses are optional: several servers leave them out.
    """
    match = _PASV_NUMBERS.search(s)
    if match is None:
        raise ValueError(f"no h1,h2,h3,h4,p1,p2 in PASV reply {s!r}")
    numbers = [int(n) for n in match.groups()]
    if any(n > 255 for n in numbers):
        raise ValueError(f"PASV reply number out of range in {s!r}")
    ip = ".".join(map(str, numbers[:4]))
    port = numbers[4] << 8 | numbers[5]
    if port == 0:
        raise ValueError(f"PASV reply with port 0: {s!r}")
    return ip, port


def parse_epsv_response(s: str) -> tuple[None, int]:
    """``229 Entering Extended Passive Mode (|||port|)`` into ``(None, port)``.

    EPSV never names an address: the data connection goes to the control host.
    """
    matches = _EPSV.findall(s)
    if not matches:
        raise ValueError(f"no (|||port|) in EPSV reply {s!r}")
    port = int(matches[-1][1])
    if not 0 < port < 65536:
        raise ValueError(f"EPSV port out of range in {s!r}")
    return None, port


def _is_local(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_private or address.is_loopback or address.is_link_local


def choose_passive_host(announced: str | None, control_host: str) -> str:
    """Where to open the data connection after EPSV/PASV.

    EPSV names no address and ``0.0.0.0`` means "here"; a server behind NAT often
    announces its inside (private) address, which is unreachable unless we are on
    that inside network too, so the control connection's host is used instead.
    """
    if announced is None:
        return control_host
    try:
        address = ipaddress.ip_address(announced)
    except ValueError:
        return control_host
    if address.is_unspecified:
        return control_host
    if _is_local(announced) and not _is_local(control_host):
        return control_host
    return announced


def parse_directory_response(s: str) -> PurePosixPath:
    """The quoted path of a ``257`` reply; ``""`` inside it is one quote (RFC 959)."""
    start = s.find('"')
    if start < 0:
        raise ValueError(f"no quoted path in {s!r}")
    chars: list[str] = []
    i = start + 1
    while i < len(s):
        ch = s[i]
        if ch == '"':
            if s[i + 1 : i + 2] == '"':
                chars.append('"')
                i += 2
                continue
            return PurePosixPath("".join(chars))
        chars.append(ch)
        i += 1
    raise ValueError(f"unterminated quoted path in {s!r}")


# --- dates ---------------------------------------------------------------------


def format_date_time(d: datetime.datetime) -> str:
    """MLSx ``modify`` style (``YYYYMMDDHHMMSS``); ls dates have no seconds."""
    return f"{d.year:04d}{d.month:02d}{d.day:02d}{d.hour:02d}{d.minute:02d}00"


def _month(name: str) -> int:
    month = _MONTHS.get(name[:3].lower()) if len(name) >= 3 else None
    if month is None or len(name) > 4:
        raise ValueError(f"not a month name: {name!r}")
    return month


def _nearest_year(
    month: int, day: int, hour: int, minute: int, now: datetime.datetime
) -> datetime.datetime:
    # ls prints "HH:MM" instead of the year for dates within half a year, so the
    # year is the one that puts the date closest to now.  Feb 29 exists only in
    # leap years, so its nearest one may be up to four years away either way.
    candidates = []
    for year in range(now.year - 4, now.year + 5):
        try:
            candidates.append(datetime.datetime(year, month, day, hour, minute))
        except ValueError:
            continue
    if not candidates:
        raise ValueError(f"no year has {month:02d}-{day:02d}")
    return min(candidates, key=lambda d: abs((now - d).total_seconds()))


def parse_ls_date(s: str, *, now: datetime.datetime | None = None) -> str:
    """An ``ls -l`` date (``Mon DD HH:MM`` or ``Mon DD  YYYY``) as ``YYYYMMDDHHMMSS``.

    Month names are the C locale's, parsed by hand: ``strptime`` would depend on
    (and need to switch) the process locale for every line.
    """
    parts = s.split()
    if len(parts) != 3:
        raise ValueError(f"not an ls date: {s!r}")
    month = _month(parts[0])
    if not parts[1].isdigit() or not parts[2].isascii():
        raise ValueError(f"not an ls date: {s!r}")
    day = int(parts[1])
    if ":" in parts[2]:
        hour_s, _, minute_s = parts[2].partition(":")
        if not (hour_s.isdigit() and minute_s.isdigit() and len(minute_s) == 2):
            raise ValueError(f"not an ls time: {s!r}")
        hour, minute = int(hour_s), int(minute_s)
        if hour > 23 or minute > 59 or not 1 <= day <= 31:
            raise ValueError(f"not an ls date: {s!r}")
        if now is None:
            now = datetime.datetime.now()
        d = _nearest_year(month, day, hour, minute, now)
    else:
        if not (parts[2].isdigit() and len(parts[2]) == 4):
            raise ValueError(f"not an ls year: {s!r}")
        d = datetime.datetime(int(parts[2]), month, day)
    return format_date_time(d)


# --- LIST lines ----------------------------------------------------------------

# A symlink is reported as a file, as aioftp does; its target is "link_dst".
_UNIX_TYPES = {"-": "file", "d": "dir", "l": "file"}
_NOT_ENTRIES = frozenset({".", ".."})
_UNIX_LINE = re.compile(
    r"(?P<type>\S)(?P<mode>[-rwxsStTlL]{9})[+.@]?\s+"
    r"(?P<links>\d+)\s+"
    r"(?P<owner>\S+)\s+(?:(?P<group>\S+)\s+)?"
    r"(?:(?P<size>\d+)|\d+,\s*\d+)\s+"
    r"(?P<date>[A-Za-z]{3,4}\.?\s+\d{1,2}\s+(?:\d{1,2}:\d{2}|\d{4}))\s"
    r"(?P<name>.+)",
    re.ASCII,
)


def parse_unix_mode(s: str) -> int:
    """``rwxr-xr-x`` (with s/S/t/T/l variants) into permission bits."""
    if len(s) != 9:
        raise ValueError(f"unix mode must be 9 characters: {s!r}")
    mode = 0
    # (position, character, bits); execute positions handled separately.
    for shift, (r, w) in zip((6, 3, 0), ((0, 1), (3, 4), (6, 7)), strict=True):
        if s[r] == "r":
            mode |= 4 << shift
        elif s[r] != "-":
            raise ValueError(f"bad read flag in {s!r}")
        if s[w] == "w":
            mode |= 2 << shift
        elif s[w] != "-":
            raise ValueError(f"bad write flag in {s!r}")
    specials = (
        (s[2], 0o4000, 0o100, "sS"),
        (s[5], 0o2000, 0o010, "sSlL"),
        (s[8], 0o1000, 0o001, "tT"),
    )
    for ch, special, execute, allowed in specials:
        if ch == "x":
            mode |= execute
        elif ch == allowed[0]:
            mode |= special | execute
        elif ch in allowed[1:]:
            mode |= special
        elif ch != "-":
            raise ValueError(f"bad execute flag {ch!r} in {s!r}")
    return mode


def parse_list_line_unix(
    line: str, *, now: datetime.datetime | None = None
) -> tuple[PurePosixPath, Info]:
    """A ``/bin/ls -l`` style line.

    The group column may be missing and device files show ``major, minor`` instead
    of a size; a symlink ``name -> target`` is named by its own name, with type
    ``"file"`` (as aioftp reports it) and the target under ``"link_dst"``.
    ``.`` and ``..`` raise ``NotAnEntry``.
    """
    match = _UNIX_LINE.fullmatch(line.rstrip("\r\n"))
    if match is None:
        raise ValueError(f"not a unix LIST line: {line!r}")
    info: Info = {
        "type": _UNIX_TYPES.get(match["type"], "unknown"),
        "unix.mode": parse_unix_mode(match["mode"]),
        "unix.links": match["links"],
        "unix.owner": match["owner"],
    }
    if match["group"] is not None:
        info["unix.group"] = match["group"]
    if match["size"] is not None:
        info["size"] = match["size"]
    info["modify"] = parse_ls_date(match["date"].replace(".", ""), now=now)
    name = match["name"].strip()
    if match["type"] == "l" and " -> " in name:
        name, _, target = name.partition(" -> ")
        info["link_dst"] = target
    return _entry_name(name, line), info


def _entry_name(name: str, line: str) -> PurePosixPath:
    if not name:
        raise ValueError(f"no name in {line!r}")
    if name in _NOT_ENTRIES:
        raise NotAnEntry(f"{name!r} names no entry of the directory: {line!r}")
    return PurePosixPath(name)


_WINDOWS_LINE = re.compile(
    r"\s*(?P<month>\d{1,2})[-/.](?P<day>\d{1,2})[-/.](?P<year>\d{4}|\d{2})\s+"
    r"(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::\d{2})?\s*(?P<ampm>[AaPp][Mm])?\s+"
    r"(?:(?P<dir><DIR>)|(?P<size>\d[\d,.]*))\s+"
    r"(?P<name>.+)",
    re.ASCII,
)


def parse_list_line_windows(line: str) -> tuple[PurePosixPath, Info]:
    """An IIS/DOS style line: ``11/11/2023  03:15 PM    <DIR>          name``.

    Accepts ``MM-DD-YY`` and ``MM/DD/YYYY``, 12- or 24-hour clocks and sizes with
    thousands separators.  ``.`` and ``..`` raise ``NotAnEntry``.
    """
    match = _WINDOWS_LINE.fullmatch(line.rstrip("\r\n"))
    if match is None:
        raise ValueError(f"not a windows LIST line: {line!r}")
    year = int(match["year"])
    if len(match["year"]) == 2:
        year += 2000 if year < 70 else 1900
    hour = int(match["hour"])
    if match["ampm"] is not None:
        if not 1 <= hour <= 12:
            raise ValueError(f"bad 12-hour time in {line!r}")
        hour = hour % 12 + (12 if match["ampm"].lower() == "pm" else 0)
    d = datetime.datetime(year, int(match["month"]), int(match["day"]), hour, int(match["minute"]))
    info: Info = {"modify": format_date_time(d)}
    if match["dir"] is not None:
        info["type"] = "dir"
    else:
        info["type"] = "file"
        info["size"] = match["size"].replace(",", "").replace(".", "")
    return _entry_name(match["name"].strip(), line), info


# --- MLSD / MLST ---------------------------------------------------------------


def parse_mlsx_line(line: str) -> tuple[PurePosixPath, Info]:
    """An RFC 3659 entry: ``fact=value;fact=value; name``.

    Facts end at the first ``"; "``; the name is everything after it, ``;`` and
    spaces included.  Fact names are case-insensitive, so keys are lowercased.
    An MLST reply's leading space is tolerated.
    """
    line = line.rstrip("\r\n")
    if line.startswith(" ") and "=" in line.partition("; ")[0]:
        line = line.lstrip(" ")
    if line.startswith(" "):
        facts, name = "", line[1:]
    elif "; " in line:
        facts, _, name = line.partition("; ")
    else:
        raise ValueError(f"no '; ' between facts and name in {line!r}")
    if not name:
        raise ValueError(f"no name in {line!r}")
    info: Info = {}
    for fact in filter(None, facts.split(";")):
        key, eq, value = fact.partition("=")
        if not eq or not key:
            raise ValueError(f"bad fact {fact!r} in {line!r}")
        key = key.lower()
        if key == "type" and "=" not in value:
            value = value.lower()
        info[key] = value
    return PurePosixPath(name), info
