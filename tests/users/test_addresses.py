"""Allowed and denied client networks: parsing and deciding, without a server."""

from __future__ import annotations

import ipaddress

import pytest

from gateway.users.addresses import AddressRules, client_address, parse_network, parse_networks


def test_no_rules_allow_every_address() -> None:
    rules = AddressRules.parse()
    assert not rules.active
    for host in ("127.0.0.1", "::1", "not an address", ""):
        assert rules.permits(host)


def test_an_allow_list_admits_only_its_networks() -> None:
    rules = AddressRules.parse(["10.0.0.0/8", "2001:db8::/32"])
    assert rules.permits("10.1.2.3")
    assert rules.permits("2001:db8:1::7")
    assert not rules.permits("192.0.2.1")
    assert not rules.permits("2001:db9::1")
    assert rules.refusal("192.0.2.1") == "192.0.2.1 is in none of the allowed networks"


def test_a_denied_network_wins_over_an_allowed_one() -> None:
    rules = AddressRules.parse(["10.0.0.0/8"], ["10.6.6.0/24"])
    assert rules.permits("10.6.7.1")
    assert not rules.permits("10.6.6.9")
    assert rules.refusal("10.6.6.9") == "10.6.6.9 is in denied network 10.6.6.0/24"


def test_deny_alone_allows_everything_else() -> None:
    rules = AddressRules.parse(deny=["::1", "127.0.0.2"])
    assert rules.permits("127.0.0.1")
    assert not rules.permits("127.0.0.2")
    assert not rules.permits("::1")
    assert rules.permits("::2")


def test_ipv4_mapped_clients_match_ipv4_rules() -> None:
    rules = AddressRules.parse(["127.0.0.0/8"])
    assert rules.permits("::ffff:127.0.0.2")
    assert not rules.permits("::ffff:192.0.2.1")
    denied = AddressRules.parse(deny=["192.0.2.0/24"])
    assert not denied.permits("::ffff:192.0.2.200")


def test_ipv4_mapped_rules_are_read_as_ipv4_networks() -> None:
    assert parse_network("::ffff:10.0.0.0/104") == ipaddress.ip_network("10.0.0.0/8")
    assert parse_network("::ffff:192.0.2.7") == ipaddress.ip_network("192.0.2.7/32")
    rules = AddressRules.parse(["::ffff:10.0.0.0/104"])
    assert rules.permits("10.9.9.9") and rules.permits("::ffff:10.9.9.9")
    assert not rules.permits("11.0.0.1")


def test_an_ipv4_rule_never_matches_an_ipv6_client() -> None:
    rules = AddressRules.parse(["0.0.0.0/0"])
    assert rules.permits("203.0.113.5")
    assert not rules.permits("2001:db8::1")


def test_scope_ids_are_ignored() -> None:
    assert client_address("fe80::1%eth0") == ipaddress.ip_address("fe80::1")
    assert AddressRules.parse(["fe80::/10"]).permits("fe80::1%eth0")


def test_rules_fail_closed_on_an_address_that_cannot_be_read() -> None:
    rules = AddressRules.parse(deny=["192.0.2.0/24"])
    assert not rules.permits("")
    assert "cannot be checked" in (rules.refusal("socket") or "")


def test_single_addresses_and_lists_in_one_string() -> None:
    assert parse_networks("10.0.0.1, ::1 192.0.2.0/24") == (
        ipaddress.ip_network("10.0.0.1/32"),
        ipaddress.ip_network("::1/128"),
        ipaddress.ip_network("192.0.2.0/24"),
    )
    assert parse_networks(["10.0.0.0/8", "10.0.0.0/8"]) == (ipaddress.ip_network("10.0.0.0/8"),)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("192.168.1.0/16", "did you mean 192.168.0.0/16"),
        ("10.0.0.0/33", "expected an address or CIDR"),
        ("example.com", "expected an address or CIDR"),
        ("", "expected an address or CIDR"),
        ("10.0.0.1 10.0.0.2", "expected an address or CIDR"),
    ],
)
def test_bad_networks_are_named(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_network(text)


def test_as_text_round_trips() -> None:
    rules = AddressRules.parse(["10.0.0.0/8", "::ffff:192.0.2.0/120"], ["2001:db8::/32"])
    allowed, denied = rules.as_text()
    assert allowed == ["10.0.0.0/8", "192.0.2.0/24"]
    assert denied == ["2001:db8::/32"]
    assert AddressRules.parse(allowed, denied) == rules
