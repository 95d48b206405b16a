"""Command lines in, (verb, argument) out; and the table that describes every verb.

The table is the single source of truth for the generic replies (500 unknown, 501
missing argument, 503/530 not logged in, 550 no permission), for HELP and for FEAT, so
a handler only holds its own logic (pyftpdlib's ``proto_cmds`` idea).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = (
    "MAX_LINE_LENGTH",
    "CommandInfo",
    "COMMANDS",
    "strip_telnet",
    "parse_command",
    "is_verb",
    "decode_line",
    "encode_text",
    "feat_lines",
    "help_lines",
    "path_argument",
    "split_glob",
    "strip_list_flags",
)

#: Longest command line accepted by default (bytes, CRLF included).  Long enough for
#: any real path, short enough that a peer cannot make us buffer without bound.
MAX_LINE_LENGTH = 4096

# --------------------------------------------------------------------------- telnet

_IAC = 0xFF
_SB = 0xFA
_SE = 0xF0
_WILL = 0xFB  # WILL, WONT, DO, DONT are 0xFB..0xFE and each carries one option byte


def strip_telnet(data: bytes) -> bytes:
    """Drop Telnet control sequences from a control-connection line.

    RFC 959 runs the control connection over Telnet NVT, so clients may send IAC IP /
    IAC DM before ABOR (RFC 959 section 4.1.3), option negotiation, or IAC IAC for a
    literal 0xFF byte in a file name.  Malformed or truncated sequences are dropped
    rather than rejected: this runs on untrusted input and must never raise.
    """
    if b"\xff" not in data:  # the overwhelmingly common case
        return data
    out = bytearray()
    n = len(data)
    i = 0
    find = data.find
    while i < n:
        j = find(b"\xff", i)
        if j < 0:
            out += data[i:]
            break
        out += data[i:j]
        if j + 1 >= n:  # lone 0xFF at the end: a raw byte of a name, keep it
            out.append(_IAC)
            break
        cmd = data[j + 1]
        if cmd == _IAC:
            out.append(_IAC)
            i = j + 2
        elif cmd == _SB:
            # Subnegotiation runs to IAC SE; IAC IAC inside it is escaped data.
            k = j + 2
            while True:
                k = find(b"\xff", k)
                if k < 0 or k + 1 >= n:
                    i = n
                    break
                if data[k + 1] == _SE:
                    i = k + 2
                    break
                k += 2
        elif cmd >= _WILL:  # WILL / WONT / DO / DONT <option>
            i = j + 3
        elif cmd >= _SE:
            # Two-byte commands (IP, DM, AO, AYT, NOP, ...).
            i = j + 2
        else:
            # Not a Telnet command: a device sent a raw 0xFF byte (e.g. latin-1 "ÿ")
            # without doubling it.  Keep it so the name round-trips byte for byte.
            out.append(_IAC)
            i = j + 1
    return bytes(out)


# --------------------------------------------------------------------------- lines


def parse_command(line: str) -> tuple[str, str]:
    """Split a decoded command line into (lowercase verb, argument).

    Only the line terminator is removed: file names may start or end with spaces and
    must reach the handler unchanged.  The verb is not validated here so that the
    caller can answer 500 with the verb the client actually sent.
    """
    line = line.rstrip("\r\n")
    verb, _, rest = line.partition(" ")
    return verb.lower(), rest


def is_verb(verb: str) -> bool:
    """Whether ``verb`` is shaped like an FTP verb (RFC 959: 3 or 4 letters; extensions
    such as HOST or XPWD stay within 8), to tell garbage from an unknown command."""
    return 0 < len(verb) <= 8 and verb.isascii() and verb.isalpha()


def decode_line(raw: bytes, encoding: str) -> str:
    """Decode a line so that bytes invalid in ``encoding`` survive a round trip.

    File names on disk or in a bucket need not be valid UTF-8; surrogateescape keeps
    each invalid byte as a lone surrogate that :func:`encode_text` turns back into the
    same byte, so RETR of a name taken from LIST finds the same file.
    """
    return raw.decode(encoding, "surrogateescape")


def encode_text(text: str, encoding: str) -> bytes:
    """Encode a reply or listing line, restoring escaped bytes; never raises.

    Surrogates that surrogateescape cannot restore (e.g. a lone U+D800 from a
    backend) become ``?`` instead of aborting the whole reply or listing.
    """
    try:
        return text.encode(encoding, "surrogateescape")
    except UnicodeEncodeError:
        return text.encode(encoding, "_gateway_escape_or_replace")


def _escape_or_replace(exc: UnicodeError) -> tuple[bytes, int]:
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    out = bytearray()
    for ch in exc.object[exc.start : exc.end]:
        code = ord(ch)
        out.append(code - 0xDC00 if 0xDC80 <= code <= 0xDCFF else 0x3F)
    return bytes(out), exc.end


def _register_error_handler() -> None:
    import codecs

    codecs.register_error("_gateway_escape_or_replace", _escape_or_replace)


_register_error_handler()

# --------------------------------------------------------------------------- table

Arg = Literal["required", "optional", "none"]
Perm = Literal["read", "write"] | None
#: Where a command's path is, for the permission check: the whole argument, a LIST
#: argument (``-la`` flags dropped, a glob's directory), after MFMT's timestamp, the
#: parent directory (CDUP), or no path.
PathArg = Literal["whole", "listing", "stamped", "parent"] | None
#: State a command needs first: a USER (PASS), an RNFR (RNTO).
Sequence = Literal["user", "rename_from"] | None


@dataclass(frozen=True, slots=True)
class CommandInfo:
    """What the dispatcher checks before a handler runs, in this order:

    ``tls_login``: refused (530) on a clear control connection when TLS is required;
    ``needs_login``: 530 before login (``"with_argument"``: only when an argument is
    given, as STAT); ``arg``: 501 when a required argument is missing; ``sequence``:
    503 when the state it continues is missing; ``permission``: 550 when the user
    lacks the right on the path found as ``path`` says; ``data``: 503 without
    PASV/EPSV/PORT/EPRT, and 521 while data would go in clear when TLS is required.
    ``feat`` is the line this command adds to the FEAT reply.
    """

    name: str
    needs_login: bool | Literal["with_argument"]
    arg: Arg
    permission: Perm
    help: str
    feat: str | None = None
    path: PathArg = None
    sequence: Sequence = None
    data: bool = False
    tls_login: bool = False


MLST_FEAT = "MLST type*;size*;modify*;create*;perm*;unique*;"

_TABLE: tuple[CommandInfo, ...] = (
    # access control
    CommandInfo("USER", False, "required", None, "USER <sp> user-name", tls_login=True),
    CommandInfo("PASS", False, "optional", None, "PASS [<sp> password]", sequence="user", tls_login=True),
    CommandInfo("ACCT", False, "required", None, "ACCT <sp> account-information", tls_login=True),
    CommandInfo("QUIT", False, "none", None, "QUIT"),
    CommandInfo("AUTH", False, "required", None, "AUTH <sp> TLS", "AUTH TLS"),
    CommandInfo("PBSZ", False, "optional", None, "PBSZ <sp> 0", "PBSZ"),  # bare: 200 (aioftp) or 501 (strict_rfc)
    CommandInfo("PROT", False, "required", None, "PROT <sp> P|C", "PROT"),
    # navigation
    CommandInfo("PWD", True, "none", None, "PWD"),
    CommandInfo("XPWD", True, "none", None, "XPWD"),
    CommandInfo("CWD", True, "required", "read", "CWD <sp> pathname", "TVFS", path="whole"),
    CommandInfo("XCWD", True, "required", "read", "XCWD <sp> pathname", path="whole"),
    CommandInfo("CDUP", True, "none", "read", "CDUP", path="parent"),
    CommandInfo("XCUP", True, "none", "read", "XCUP", path="parent"),
    # directories and files
    CommandInfo("MKD", True, "required", "write", "MKD <sp> pathname", path="whole"),
    CommandInfo("XMKD", True, "required", "write", "XMKD <sp> pathname", path="whole"),
    CommandInfo("RMD", True, "required", "write", "RMD <sp> pathname", path="whole"),
    CommandInfo("XRMD", True, "required", "write", "XRMD <sp> pathname", path="whole"),
    CommandInfo("RNFR", True, "required", "write", "RNFR <sp> pathname", path="whole"),
    CommandInfo("RNTO", True, "required", "write", "RNTO <sp> pathname", path="whole", sequence="rename_from"),
    CommandInfo("DELE", True, "required", "write", "DELE <sp> pathname", path="whole"),
    CommandInfo("SIZE", True, "required", "read", "SIZE <sp> pathname", "SIZE", path="whole"),
    CommandInfo("MDTM", True, "required", "read", "MDTM <sp> pathname", "MDTM", path="whole"),
    CommandInfo("MFMT", True, "required", "write", "MFMT <sp> YYYYMMDDHHMMSS <sp> pathname", "MFMT", path="stamped"),
    # listings
    CommandInfo("LIST", True, "optional", "read", "LIST [<sp> pathname]", path="listing", data=True),
    CommandInfo("NLST", True, "optional", "read", "NLST [<sp> pathname]", path="listing", data=True),
    CommandInfo("MLSD", True, "optional", "read", "MLSD [<sp> pathname]", MLST_FEAT, path="whole", data=True),
    CommandInfo("MLST", True, "optional", "read", "MLST [<sp> pathname]", MLST_FEAT, path="whole"),
    # STAT without a path is allowed before login (RFC 959: "status of the server")
    CommandInfo("STAT", "with_argument", "optional", "read", "STAT [<sp> pathname]", path="listing"),
    # transfers
    CommandInfo("STOR", True, "required", "write", "STOR <sp> file-name", path="whole", data=True),
    CommandInfo("STOU", True, "optional", "write", "STOU [<sp> file-name]", path="whole", data=True),
    CommandInfo("APPE", True, "required", "write", "APPE <sp> file-name", path="whole", data=True),
    CommandInfo("RETR", True, "required", "read", "RETR <sp> file-name", path="whole", data=True),
    CommandInfo("REST", True, "required", None, "REST <sp> offset", "REST STREAM"),
    CommandInfo("ABOR", True, "none", None, "ABOR"),
    CommandInfo("ALLO", True, "required", None, "ALLO <sp> bytes"),
    CommandInfo("TYPE", True, "required", None, "TYPE <sp> A|I|L 8"),
    CommandInfo("MODE", True, "required", None, "MODE <sp> S"),
    CommandInfo("STRU", True, "required", None, "STRU <sp> F"),
    # data connection
    CommandInfo("PASV", True, "none", None, "PASV", "PASV"),
    CommandInfo("EPSV", True, "optional", None, "EPSV [<sp> 1|2|ALL]", "EPSV"),
    CommandInfo("PORT", True, "required", None, "PORT <sp> h1,h2,h3,h4,p1,p2"),
    CommandInfo("EPRT", True, "required", None, "EPRT <sp> |proto|addr|port|", "EPRT"),
    # long addresses (RFC 1639): known, refused with 502 (no handler on purpose)
    CommandInfo("LPRT", True, "required", None, "LPRT <sp> long-host-port"),
    CommandInfo("LPSV", True, "none", None, "LPSV"),
    # informational
    CommandInfo("SYST", False, "none", None, "SYST"),
    CommandInfo("NOOP", False, "none", None, "NOOP"),
    CommandInfo("FEAT", False, "none", None, "FEAT"),
    CommandInfo("OPTS", False, "required", None, "OPTS <sp> UTF8 ON", "UTF8"),
    CommandInfo("HELP", False, "optional", None, "HELP [<sp> command]"),
    CommandInfo("SITE", True, "required", None, "SITE <sp> HELP|CHMOD <sp> mode <sp> path"),
    CommandInfo("AVBL", True, "optional", "read", "AVBL [<sp> pathname]", "AVBL", path="whole"),
    # session
    CommandInfo("REIN", False, "none", None, "REIN"),
    CommandInfo("HOST", False, "required", None, "HOST <sp> hostname", "HOST"),
    CommandInfo("CCC", False, "none", None, "CCC"),
    # checksums (draft-bryan-ftpext-hash; RANG of draft-bryan-ftp-range for HASH only,
    # so no "RANG STREAM" in FEAT); legacy commands take [<start> <end>] after the path
    CommandInfo("HASH", True, "required", "read", "HASH <sp> pathname", "HASH SHA-256*;SHA-512;SHA-1;MD5;CRC32", path="whole"),
    CommandInfo("RANG", True, "required", None, "RANG <sp> start-point <sp> end-point"),
    CommandInfo("XCRC", True, "required", "read", "XCRC <sp> pathname [<sp> start <sp> end]", "XCRC filename;start;end", path="whole"),
    CommandInfo("XMD5", True, "required", "read", "XMD5 <sp> pathname [<sp> start <sp> end]", "XMD5 filename;start;end", path="whole"),
    CommandInfo("XSHA", True, "required", "read", "XSHA <sp> pathname [<sp> start <sp> end]", path="whole"),
    CommandInfo("XSHA1", True, "required", "read", "XSHA1 <sp> pathname [<sp> start <sp> end]", "XSHA1 filename;start;end", path="whole"),
    CommandInfo("XSHA256", True, "required", "read", "XSHA256 <sp> pathname [<sp> start <sp> end]", "XSHA256 filename;start;end", path="whole"),
    CommandInfo("XSHA512", True, "required", "read", "XSHA512 <sp> pathname [<sp> start <sp> end]", "XSHA512 filename;start;end", path="whole"),
)

_GLOB_CHARS = frozenset("*?[")


def split_glob(argument: str) -> tuple[str, str | None]:
    """(directory to list, pattern) when the last part of a LIST/NLST argument is a
    glob (``*.txt``, ``logs/2024-*``); (argument, None) otherwise."""
    head, slash, last = argument.rpartition("/")
    if not _GLOB_CHARS & set(last):
        return argument, None
    return ((head or "/") if slash else ""), last


def strip_list_flags(argument: str) -> str:
    """Drop ``ls``-style options (``-la``, ``-a -l``) that many clients send with LIST
    and NLST, keeping the path.  A name that starts with ``-`` is only reachable as
    ``./-name``, as with ``ls`` itself."""
    if not argument.startswith("-"):
        return argument
    rest = argument
    while rest.startswith("-"):
        flag, _, rest = rest.partition(" ")
        rest = rest.lstrip(" ")
        if flag == "--":
            break
    return rest


def path_argument(info: CommandInfo, rest: str) -> str | None:
    """The path a command acts on, as its table entry says where to find it; None when
    the command has none (or, for MFMT, the argument is malformed: the handler says so)."""
    kind = info.path
    if kind == "whole":
        return rest
    if kind == "listing":
        return split_glob(strip_list_flags(rest))[0]
    if kind == "parent":
        return ".."
    if kind == "stamped":
        _stamp, _, path = rest.strip(" ").partition(" ")
        return path or None
    return None


#: Verb (lowercase, as returned by :func:`parse_command`) -> its description.
COMMANDS: dict[str, CommandInfo] = {info.name.lower(): info for info in _TABLE}

_HELP_LINES: tuple[str, ...] = tuple(sorted(info.help for info in _TABLE))


def feat_lines(enabled: set[str]) -> list[str]:
    """FEAT body lines for the verbs the server actually serves (case-insensitive),
    so a client is never told about an extension it cannot use."""
    lines = set()
    for verb in enabled:
        info = COMMANDS.get(verb.lower())
        if info is not None and info.feat is not None:
            lines.add(info.feat)
    return sorted(lines)


def help_lines(enabled: set[str] | None = None) -> list[str]:
    """HELP body lines: one syntax line per verb (all known verbs by default)."""
    if enabled is None:
        return list(_HELP_LINES)
    wanted = {verb.lower() for verb in enabled}
    return sorted(info.help for key, info in COMMANDS.items() if key in wanted)
