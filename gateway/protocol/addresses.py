"""Data-connection addresses: PASV/EPSV replies and PORT/EPRT/EPSV arguments.

Parsing is strict (ASCII digits only, every range checked) because the arguments come
from the client and end up in ``connect()``.  Whether a PORT/EPRT host may differ from
the control connection's peer (FTP bounce, RFC 2577) is the server's policy, not
decided here.
"""

from __future__ import annotations

import ipaddress

__all__ = (
    "UnsupportedProtocol",
    "format_pasv_reply_address",
    "format_epsv",
    "parse_port",
    "parse_eprt",
    "parse_epsv_arg",
    "format_port_argument",
    "format_eprt_argument",
)


class UnsupportedProtocol(ValueError):
    """EPRT/EPSV named a network protocol other than 1 (IPv4) or 2 (IPv6).

    Separate from other ``ValueError`` because RFC 2428 answers it with 522, not 501.
    """


def _number(text: str, low: int, high: int, what: str) -> int:
    if not (0 < len(text) <= 5 and text.isascii() and text.isdigit()):
        raise ValueError(f"bad {what}: {text!r}")
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f"{what} out of range: {value}")
    return value


def _check_port(port: int) -> None:
    if not 0 <= port <= 65535:
        raise ValueError(f"port out of range: {port}")


def format_pasv_reply_address(host: str, port: int) -> str:
    """``(h1,h2,h3,h4,p1,p2)`` for a 227 reply.

    PASV can only express IPv4; an IPv4-mapped IPv6 address (a dual-stack socket
    accepting an IPv4 client) is shown as its IPv4 form, other IPv6 raises ValueError
    (the client should use EPSV).
    """
    _check_port(port)
    address = ipaddress.ip_address(host.partition("%")[0])
    if address.version == 6:
        mapped = address.ipv4_mapped
        if mapped is None:
            raise ValueError(f"PASV cannot express IPv6 address {host!r}")
        address = mapped
    h1, h2, h3, h4 = address.packed
    return f"({h1},{h2},{h3},{h4},{port >> 8},{port & 0xFF})"


def format_epsv(port: int) -> str:
    """``(|||port|)`` for a 229 reply (RFC 2428: the client reuses the control host)."""
    _check_port(port)
    return f"(|||{port}|)"


def parse_port(arg: str) -> tuple[str, int]:
    """``h1,h2,h3,h4,p1,p2`` into (dotted IPv4 host, port)."""
    fields = arg.strip().split(",")
    if len(fields) != 6:
        raise ValueError(f"PORT needs 6 comma-separated numbers, got {arg!r}")
    numbers = [_number(field.strip(), 0, 255, "PORT field") for field in fields]
    port = numbers[4] * 256 + numbers[5]
    if port == 0:
        raise ValueError("PORT port must not be 0")
    return f"{numbers[0]}.{numbers[1]}.{numbers[2]}.{numbers[3]}", port


def parse_eprt(arg: str) -> tuple[str, int]:
    """RFC 2428 ``<d>proto<d>address<d>port<d>`` into (host, port).

    The delimiter is whatever printable character comes first (usually ``|``).  The
    address is checked against the protocol and returned in canonical form.
    """
    arg = arg.strip()
    if len(arg) < 2:
        raise ValueError(f"bad EPRT argument {arg!r}")
    delimiter = arg[0]
    if not (delimiter.isascii() and delimiter.isprintable()) or delimiter.isalnum():
        raise ValueError(f"bad EPRT delimiter {delimiter!r}")
    fields = arg.split(delimiter)
    if len(fields) != 5 or fields[0] or fields[4]:
        raise ValueError(f"EPRT needs <d>proto<d>address<d>port<d>, got {arg!r}")
    _, proto, host, port_text, _ = fields
    port = _number(port_text, 1, 65535, "EPRT port")
    try:
        if proto == "1":
            address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.IPv4Address(host)
        elif proto == "2":
            address = ipaddress.IPv6Address(host)
        else:
            raise UnsupportedProtocol(f"network protocol {proto!r} not supported, use (1,2)")
    except ipaddress.AddressValueError as exc:
        raise ValueError(f"bad EPRT address {host!r}: {exc}") from None
    return str(address), port


def parse_epsv_arg(arg: str) -> str:
    """Normalize an EPSV argument: ``""``, ``"1"``, ``"2"`` or ``"ALL"``.

    A number other than 1 or 2 raises :class:`UnsupportedProtocol` (reply 522); anything
    else raises ``ValueError`` (reply 501).
    """
    value = arg.strip()
    if value in ("", "1", "2"):
        return value
    upper = value.upper()
    if upper == "ALL":
        return upper
    if value.isascii() and value.isdigit():
        raise UnsupportedProtocol(f"network protocol {value!r} not supported, use (1,2)")
    raise ValueError(f"bad EPSV argument {arg!r}")


def format_port_argument(host: str, port: int) -> str:
    """``h1,h2,h3,h4,p1,p2`` for a PORT command (IPv4 only; mapped IPv6 allowed)."""
    _check_port(port)
    address = ipaddress.ip_address(host.partition("%")[0])
    if address.version == 6:
        mapped = address.ipv4_mapped
        if mapped is None:
            raise ValueError(f"PORT cannot express IPv6 address {host!r}; use EPRT")
        address = mapped
    return ",".join(str(b) for b in address.packed) + f",{port >> 8},{port & 0xFF}"


def format_eprt_argument(host: str, port: int) -> str:
    """``|1|addr|port|`` or ``|2|addr|port|`` for an EPRT command (RFC 2428)."""
    _check_port(port)
    address = ipaddress.ip_address(host.partition("%")[0])
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return f"|{1 if address.version == 4 else 2}|{address}|{port}|"
