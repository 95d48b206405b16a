"""Which client addresses may connect or log in: allowed and denied networks (CIDR).

Pure: parsing networks and deciding about one address, no I/O.  Used for an account
(``User(allow_from=..., deny_from=...)``, checked at login) and for the whole server
(``Server(allow_from=..., deny_from=...)``, checked before the greeting).

The rules read as an operator expects them to:

* a denied network wins over an allowed one (``allow 10.0.0.0/8``, ``deny 10.6.6.0/24``:
  everything in 10/8 but that /24);
* an empty allow list allows every address not denied;
* an IPv4 client reaching an IPv6 socket arrives as ``::ffff:a.b.c.d``: it is matched
  as the IPv4 address it is, and a rule written in that form (``::ffff:10.0.0.0/104``)
  is read as the IPv4 network it names, so one rule covers both ways of arriving;
* an address that cannot be parsed (a Unix socket has none) is refused whenever any
  rule is set: the rules fail closed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ("AddressRules", "Network", "client_address", "parse_network", "parse_networks")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_MAPPED_PREFIX = 96  # ::ffff:0:0/96 holds the IPv4-mapped addresses


def parse_network(text: str) -> Network:
    """A network from ``10.0.0.0/8``, ``2001:db8::/32`` or one address (``192.0.2.7``).

    Host bits set below the prefix (``192.168.1.0/16``) are refused rather than
    silently widened: the message names the network that was probably meant.

    :raises ValueError: not an address or network
    """
    cleaned = text.strip()
    if not cleaned or any(c.isspace() for c in cleaned):
        raise ValueError(f"bad network {text!r}: expected an address or CIDR such as 10.0.0.0/8")
    try:
        network = ipaddress.ip_network(cleaned, strict=True)
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(cleaned, strict=False)
        except ValueError:
            raise ValueError(
                f"bad network {text!r}: expected an address or CIDR such as 10.0.0.0/8 "
                "or 2001:db8::/32"
            ) from None
        raise ValueError(
            f"bad network {text!r}: host bits are set below /{loose.prefixlen} "
            f"(did you mean {loose}?)"
        ) from exc
    return _unmapped_network(network)


def parse_networks(texts: Iterable[str] | str | None) -> tuple[Network, ...]:
    """Networks from a list (or one comma/space separated string), duplicates dropped."""
    if texts is None:
        return ()
    if isinstance(texts, str):
        texts = texts.replace(",", " ").split()
    networks: list[Network] = []
    for text in texts:
        network = parse_network(text) if isinstance(text, str) else _coerce(text)
        if network not in networks:
            networks.append(network)
    return tuple(networks)


def client_address(host: str) -> Address | None:
    """A peer's address as rules see it: scope id dropped, IPv4-mapped IPv6 as IPv4."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True)
class AddressRules:
    """Allowed and denied networks; with neither, every address is allowed."""

    allow: tuple[Network, ...] = ()
    deny: tuple[Network, ...] = ()

    @classmethod
    def parse(
        cls, allow: Iterable[str] | str | None = None, deny: Iterable[str] | str | None = None
    ) -> AddressRules:
        """Rules from CIDR strings.  :raises ValueError: naming the bad entry"""
        return cls(parse_networks(allow), parse_networks(deny))

    @property
    def active(self) -> bool:
        """Whether any rule is set (without one, nothing needs checking)."""
        return bool(self.allow or self.deny)

    def refusal(self, host: str) -> str | None:
        """Why ``host`` is refused ("denied by 10.6.6.0/24"...), or None when it may."""
        if not self.active:
            return None
        address = client_address(host)
        if address is None:
            return f"address {host!r} cannot be checked against the network rules"
        for network in self.deny:
            if address.version == network.version and address in network:
                return f"{address} is in denied network {network}"
        if not self.allow:
            return None
        for network in self.allow:
            if address.version == network.version and address in network:
                return None
        return f"{address} is in none of the allowed networks"

    def permits(self, host: str) -> bool:
        return self.refusal(host) is None

    def as_text(self) -> tuple[list[str], list[str]]:
        """(allowed, denied) as strings, for storing and showing."""
        return [str(n) for n in self.allow], [str(n) for n in self.deny]


def _unmapped_network(network: Network) -> Network:
    """``::ffff:10.0.0.0/104`` is 10.0.0.0/8: the form IPv4 clients are matched in."""
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= _MAPPED_PREFIX:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.IPv4Network((mapped, network.prefixlen - _MAPPED_PREFIX))
    return network


def _coerce(value: object) -> Network:
    if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return _unmapped_network(value)
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return _unmapped_network(ipaddress.ip_network(value))
    raise ValueError(f"bad network {value!r}: expected a string such as 10.0.0.0/8")
