"""The PROXY protocol header (HAProxy's, versions 1 and 2): bytes in, a header out.

A TCP load balancer in front of the server opens its own connection to it, so the
server's peer is the balancer.  With the PROXY protocol the balancer starts that
connection with one header naming the client it relays; everything after the header
is the client's own bytes (FTP, or a TLS handshake on an implicit-TLS listener).

Pure: no sockets, no clock.  :func:`parse_proxy_header` looks at the bytes received
so far and says either what the header is (and how many bytes it took) or how many
more bytes it needs *at least*.  Reading exactly that many never reads past the end
of the header, so a caller that does so leaves the bytes after it in the socket for
whoever comes next (a TLS handshake cannot be handed bytes already read).

The two formats:

* v1, a text line: ``PROXY TCP4 <src> <dst> <sport> <dport>\\r\\n`` (or ``TCP6``), or
  ``PROXY UNKNOWN ...\\r\\n`` (the balancer does not know: the connection's own
  addresses stand).  At most 107 bytes, CRLF included.
* v2, binary: a 12-byte signature, a version/command byte (0x21 PROXY, 0x20
  LOCAL), a family/transport byte, a 16-bit big-endian length, then the addresses
  (12 bytes for TCP over IPv4, 36 over IPv6, 216 for Unix sockets) and optional
  type-length-value extensions (TLVs), which are checked for shape and otherwise
  ignored.  LOCAL is the balancer's own connection (a health check): its addresses
  are discarded and the connection's own stand.

A header that breaks the format raises :class:`ProxyHeaderError`: the peer was
wrong, and the connection should be closed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection
from dataclasses import dataclass

__all__ = (
    "MAX_V1_LENGTH",
    "MAX_V2_PAYLOAD",
    "V1_PREFIX",
    "V2_SIGNATURE",
    "Incomplete",
    "ProxyHeader",
    "ProxyHeaderError",
    "build_v1",
    "build_v2",
    "parse_proxy_header",
    "starts_like_header",
)

#: What every v1 header starts with.
V1_PREFIX = b"PROXY "
#: What every v2 header starts with.  It holds a NUL and "QUIT\n", so a server that
#: does not expect the header stops reading there rather than acting on it.
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
#: The longest v1 line, CRLF included (a TCP6 line with the longest addresses).
MAX_V1_LENGTH = 107
#: The most v2 bytes accepted after the fixed 16 (addresses and TLVs).  The format
#: allows 65535; real balancers send a few hundred at most, and a receiver that
#: believes any length lets a peer make it wait for (and hold) 64 KiB.
MAX_V2_PAYLOAD = 4096

_V2_FIXED = 16
_V1_SHORTEST = len(b"PROXY UNKNOWN\r\n")
#: The shortest complete line for each v1 protocol word.
_V1_SHORTEST_BY_PROTOCOL = {
    b"TCP4": len(b"PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n"),
    b"TCP6": len(b"PROXY TCP6 :: :: 0 0\r\n"),
    b"UNKNOWN": _V1_SHORTEST,
}
#: Printable ASCII: what a v1 line (but for what follows UNKNOWN) is made of.
_V1_ALLOWED_BYTES = frozenset(range(0x20, 0x7F))

_LOCAL, _PROXY = 0x0, 0x1
_UNSPEC, _INET, _INET6, _UNIX = 0x0, 0x1, 0x2, 0x3
_STREAM = 0x1
#: Family/transport bytes the specification defines; any other is refused.
_V2_KNOWN_FAMILIES = frozenset({0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32})
_V2_ADDRESS_LENGTH = {_UNSPEC: 0, _INET: 12, _INET6: 36, _UNIX: 216}


class ProxyHeaderError(ValueError):
    """The bytes are not a valid PROXY header (or not one of the accepted versions)."""


@dataclass(frozen=True, slots=True)
class Incomplete:
    """Not a whole header yet: at least ``missing`` more bytes belong to it."""

    missing: int


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """A complete header.

    ``source`` is the relayed client as (address, port), ``destination`` the address
    it reached on the balancer.  Both are None when the header says to keep the
    connection's own addresses: a v2 LOCAL command (``local`` is then True), a v1
    ``UNKNOWN``, or a v2 family other than TCP over IPv4/IPv6.
    """

    version: int
    #: the header's length in bytes: what comes after it is the client's
    length: int
    source: tuple[str, int] | None = None
    destination: tuple[str, int] | None = None
    local: bool = False
    #: v2 extensions as (type, value), in order; never acted on
    tlvs: tuple[tuple[int, bytes], ...] = ()


def starts_like_header(data: bytes) -> bool | None:
    """Whether ``data`` (a connection's first bytes) begins a PROXY header of either
    version: True, False, or None while it is too short to tell."""
    for marker in (V1_PREFIX, V2_SIGNATURE):
        size = min(len(data), len(marker))
        if data[:size] == marker[:size]:
            return True if size == len(marker) else None
    return False


def parse_proxy_header(
    data: bytes | bytearray | memoryview,
    *,
    versions: Collection[int] = (1, 2),
    max_v2_payload: int = MAX_V2_PAYLOAD,
) -> ProxyHeader | Incomplete:
    """The header at the start of ``data``, or how many bytes it still needs at least.

    ``versions``: which of 1 and 2 are accepted (a listener set to one refuses the
    other).  Bytes after the header are not looked at.

    :raises ProxyHeaderError: ``data`` does not start with an acceptable header
    """
    if not versions or not set(versions) <= {1, 2}:
        raise ValueError(f"versions must be some of 1 and 2, got {versions!r}")
    head = bytes(data[: max(MAX_V1_LENGTH, _V2_FIXED + max_v2_payload)])
    if not head:
        return Incomplete(_V1_SHORTEST if 1 in versions else _V2_FIXED)
    if _is_prefix(head, V2_SIGNATURE):
        if 2 not in versions:
            raise ProxyHeaderError("a PROXY protocol v2 header where only v1 is accepted")
        return _parse_v2(head, max_v2_payload)
    if _is_prefix(head, V1_PREFIX):
        if 1 not in versions:
            raise ProxyHeaderError("a PROXY protocol v1 header where only v2 is accepted")
        return _parse_v1(head)
    expected = " or ".join(f"v{v}" for v in sorted(versions))
    raise ProxyHeaderError(f"not a PROXY protocol header (expected {expected}): starts {head[:16]!r}")


def _is_prefix(head: bytes, marker: bytes) -> bool:
    size = min(len(head), len(marker))
    return head[:size] == marker[:size]


# -- v1 -------------------------------------------------------------------------------
def _parse_v1(head: bytes) -> ProxyHeader | Incomplete:
    end = head.find(b"\r\n", 0, MAX_V1_LENGTH)
    if end < 0:
        return _v1_missing(head)
    line = head[:end]
    fields = line.split(b" ")
    protocol = fields[1] if len(fields) > 1 else b""
    if protocol == b"UNKNOWN":
        # whatever follows UNKNOWN up to the CRLF is ignored (the specification's rule)
        return ProxyHeader(version=1, length=end + 2)
    _check_v1_bytes(line)
    if protocol not in (b"TCP4", b"TCP6"):
        raise ProxyHeaderError(f"PROXY v1: unknown protocol {protocol!r} (TCP4, TCP6 or UNKNOWN)")
    if len(fields) != 6:
        raise ProxyHeaderError(
            f"PROXY v1: expected 'PROXY {protocol.decode()} <source> <destination> "
            f"<source port> <destination port>', got {line!r}"
        )
    version = 4 if protocol == b"TCP4" else 6
    source = (_v1_address(fields[2], version), _v1_port(fields[4]))
    destination = (_v1_address(fields[3], version), _v1_port(fields[5]))
    return ProxyHeader(version=1, length=end + 2, source=source, destination=destination)


def _v1_missing(head: bytes) -> Incomplete:
    """No CRLF yet: refuse what can no longer become a header, else say how much more
    it needs at least (never more than is certainly still part of the line)."""
    if len(head) >= MAX_V1_LENGTH:
        raise ProxyHeaderError(f"PROXY v1: no CRLF within {MAX_V1_LENGTH} bytes")
    body = head[:-1] if head.endswith(b"\r") else head  # a CR may begin the CRLF
    word, space, _ = body[len(V1_PREFIX) :].partition(b" ")
    shortest = _V1_SHORTEST
    if space:
        if word not in _V1_SHORTEST_BY_PROTOCOL:
            raise ProxyHeaderError(f"PROXY v1: unknown protocol {word!r} (TCP4, TCP6 or UNKNOWN)")
        shortest = _V1_SHORTEST_BY_PROTOCOL[word]
    elif not any(name.startswith(word) for name in _V1_SHORTEST_BY_PROTOCOL):
        raise ProxyHeaderError(f"PROXY v1: unknown protocol {word!r} (TCP4, TCP6 or UNKNOWN)")
    if not (space and word == b"UNKNOWN"):  # after UNKNOWN anything goes
        _check_v1_bytes(body)
    # the line ends with CRLF, not seen yet: one more byte when a CR ends the data so
    # far, two otherwise
    missing = max(shortest - len(head), 1 if head.endswith(b"\r") else 2)
    return Incomplete(min(missing, MAX_V1_LENGTH - len(head)))


def _check_v1_bytes(line: bytes) -> None:
    for byte in line:
        if byte not in _V1_ALLOWED_BYTES:
            raise ProxyHeaderError(f"PROXY v1: byte {bytes([byte])!r} in the header line")


def _v1_address(text: bytes, version: int) -> str:
    try:
        address = ipaddress.ip_address(text.decode("ascii"))
    except ValueError:
        raise ProxyHeaderError(f"PROXY v1: {text!r} is not an IPv{version} address") from None
    if address.version != version or b"%" in text:
        raise ProxyHeaderError(f"PROXY v1: {text!r} is not an IPv{version} address")
    return str(address)


def _v1_port(text: bytes) -> int:
    if not (text.isdigit() and 1 <= len(text) <= 5) or (len(text) > 1 and text.startswith(b"0")):
        raise ProxyHeaderError(f"PROXY v1: {text!r} is not a port number")
    port = int(text)
    if port > 65535:
        raise ProxyHeaderError(f"PROXY v1: {text!r} is not a port number")
    return port


# -- v2 -------------------------------------------------------------------------------
def _parse_v2(head: bytes, max_payload: int) -> ProxyHeader | Incomplete:
    if len(head) < _V2_FIXED:
        return Incomplete(_V2_FIXED - len(head))
    version, command = head[12] >> 4, head[12] & 0x0F
    if version != 2:
        raise ProxyHeaderError(f"PROXY v2: version {version} in the version/command byte (expected 2)")
    if command not in (_LOCAL, _PROXY):
        raise ProxyHeaderError(f"PROXY v2: unknown command {command:#x} (LOCAL 0x0 or PROXY 0x1)")
    family_byte = head[13]
    if command == _PROXY and family_byte not in _V2_KNOWN_FAMILIES:
        raise ProxyHeaderError(f"PROXY v2: unknown address family/transport byte {family_byte:#04x}")
    payload_length = int.from_bytes(head[14:16], "big")
    if payload_length > max_payload:
        raise ProxyHeaderError(
            f"PROXY v2: {payload_length} bytes of addresses and extensions (at most {max_payload})"
        )
    total = _V2_FIXED + payload_length
    if len(head) < total:
        return Incomplete(total - len(head))
    payload = head[_V2_FIXED:total]
    if command == _LOCAL:
        # the balancer's own connection: the address block, family included, is
        # discarded whatever it says (the specification's rule)
        return ProxyHeader(version=2, length=total, local=True)
    family, transport = family_byte >> 4, family_byte & 0x0F
    address_length = _V2_ADDRESS_LENGTH[family]
    if payload_length < address_length:
        raise ProxyHeaderError(
            f"PROXY v2: {payload_length} bytes where the addresses alone take {address_length}"
        )
    tlvs = _v2_tlvs(payload[address_length:])
    if transport != _STREAM or family not in (_INET, _INET6):
        # UNSPEC, Unix sockets, datagrams: nothing a TCP session can use
        return ProxyHeader(version=2, length=total, tlvs=tlvs)
    size = 4 if family == _INET else 16
    source_ip = ipaddress.ip_address(payload[:size])
    destination_ip = ipaddress.ip_address(payload[size : 2 * size])
    ports = payload[2 * size : 2 * size + 4]
    return ProxyHeader(
        version=2,
        length=total,
        source=(str(source_ip), int.from_bytes(ports[:2], "big")),
        destination=(str(destination_ip), int.from_bytes(ports[2:], "big")),
        tlvs=tlvs,
    )


def _v2_tlvs(data: bytes) -> tuple[tuple[int, bytes], ...]:
    found: list[tuple[int, bytes]] = []
    index = 0
    while index < len(data):
        if len(data) - index < 3:
            raise ProxyHeaderError("PROXY v2: a truncated extension (TLV) after the addresses")
        kind = data[index]
        length = int.from_bytes(data[index + 1 : index + 3], "big")
        start = index + 3
        if start + length > len(data):
            raise ProxyHeaderError(
                f"PROXY v2: extension {kind:#04x} says {length} bytes, {len(data) - start} remain"
            )
        found.append((kind, data[start : start + length]))
        index = start + length
    return tuple(found)


# -- building (the balancer's side: tests, tools) ------------------------------------------
def build_v1(source: tuple[str, int] | None, destination: tuple[str, int] | None = None) -> bytes:
    """A v1 line relaying ``source``; without it, ``PROXY UNKNOWN``."""
    if source is None:
        return b"PROXY UNKNOWN\r\n"
    if destination is None:
        destination = ("0.0.0.0", 0) if ipaddress.ip_address(source[0]).version == 4 else ("::", 0)
    src, dst = ipaddress.ip_address(source[0]), ipaddress.ip_address(destination[0])
    if src.version != dst.version:
        raise ValueError("source and destination must be of one address family")
    word = "TCP4" if src.version == 4 else "TCP6"
    return f"PROXY {word} {src} {dst} {source[1]} {destination[1]}\r\n".encode("ascii")


def build_v2(
    source: tuple[str, int] | None,
    destination: tuple[str, int] | None = None,
    *,
    local: bool = False,
    tlvs: tuple[tuple[int, bytes], ...] = (),
) -> bytes:
    """A v2 header relaying ``source`` over TCP; ``local`` (or no source): LOCAL."""
    extensions = b"".join(bytes([kind]) + len(value).to_bytes(2, "big") + value for kind, value in tlvs)
    if local or source is None:
        return V2_SIGNATURE + bytes([0x20, 0x00]) + len(extensions).to_bytes(2, "big") + extensions
    src = ipaddress.ip_address(source[0])
    if destination is None:
        destination = ("0.0.0.0", 0) if src.version == 4 else ("::", 0)
    dst = ipaddress.ip_address(destination[0])
    if src.version != dst.version:
        raise ValueError("source and destination must be of one address family")
    family = 0x11 if src.version == 4 else 0x21
    body = (
        src.packed + dst.packed + source[1].to_bytes(2, "big") + destination[1].to_bytes(2, "big")
        + extensions
    )
    return V2_SIGNATURE + bytes([0x21, family]) + len(body).to_bytes(2, "big") + body
