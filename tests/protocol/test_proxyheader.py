"""The PROXY protocol header parser (``gateway.protocol.proxyheader``), bytes only.

What matters besides the values: a header split anywhere parses the same when fed
by the parser's own "at least N more bytes" answers, and feeding it that way never
takes a byte past the header (the bytes after it belong to FTP, or to a TLS
handshake).  Property tests check both over random headers and random bytes.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.protocol.proxyheader import (
    MAX_V1_LENGTH,
    MAX_V2_PAYLOAD,
    V2_SIGNATURE,
    Incomplete,
    ProxyHeader,
    ProxyHeaderError,
    build_v1,
    build_v2,
    parse_proxy_header,
    starts_like_header,
)

FTP = b"USER alice\r\n"


def parse(data: bytes, **kwargs: object) -> ProxyHeader:
    result = parse_proxy_header(data, **kwargs)  # type: ignore[arg-type]
    assert isinstance(result, ProxyHeader), result
    return result


def feed(stream: bytes, **kwargs: object) -> tuple[ProxyHeader, int]:
    """Read ``stream`` as a receiver does: exactly the bytes the parser asks for.
    The header, and how many bytes were taken from ``stream``."""
    taken = 0
    while True:
        result = parse_proxy_header(stream[:taken], **kwargs)  # type: ignore[arg-type]
        if isinstance(result, ProxyHeader):
            return result, taken
        assert result.missing >= 1
        if taken + result.missing > len(stream):
            raise EOFError(taken)
        taken += result.missing


def v2(command: int, family: int, body: bytes) -> bytes:
    return V2_SIGNATURE + bytes([command, family]) + len(body).to_bytes(2, "big") + body


# ----------------------------------------------------------------------------- v1


def test_v1_tcp4() -> None:
    header = parse(b"PROXY TCP4 192.0.2.7 198.51.100.1 50123 21\r\n" + FTP)
    assert header == ProxyHeader(version=1, length=44, source=("192.0.2.7", 50123),
                                 destination=("198.51.100.1", 21))


def test_v1_tcp6_is_normalized() -> None:
    header = parse(b"PROXY TCP6 2001:DB8:0:0::7 2001:db8::1 65535 990\r\n")
    assert header.source == ("2001:db8::7", 65535)
    assert header.destination == ("2001:db8::1", 990)


@pytest.mark.parametrize("line", [
    b"PROXY UNKNOWN\r\n",
    b"PROXY UNKNOWN 192.0.2.7 198.51.100.1 50123 21\r\n",
    b"PROXY UNKNOWN \x00\xff whatever the balancer puts here\r\n",  # ignored, as the spec says
])
def test_v1_unknown_keeps_the_connection_addresses(line: bytes) -> None:
    header = parse(line + FTP)
    assert header.source is None and header.destination is None and not header.local
    assert header.length == len(line)


def test_v1_longest_line_is_accepted_and_one_more_byte_is_not() -> None:
    longest = b"PROXY TCP6 " + b"ffff:" * 7 + b"ffff " + b"ffff:" * 7 + b"ffff 65535 65535\r\n"
    assert len(longest) <= MAX_V1_LENGTH
    assert parse(longest).source == ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535)
    unknown = b"PROXY UNKNOWN " + b"x" * (MAX_V1_LENGTH - 16) + b"\r\n"
    assert len(unknown) == MAX_V1_LENGTH and parse(unknown).length == MAX_V1_LENGTH
    with pytest.raises(ProxyHeaderError, match="107"):
        parse_proxy_header(b"PROXY UNKNOWN " + b"x" * (MAX_V1_LENGTH - 15) + b"\r\n")


@pytest.mark.parametrize("line", [
    b"PROXY TCP4 192.0.2.7 198.51.100.1 50123 21\n",  # LF alone
    b"PROXY TCP4 192.0.2.7 198.51.100.1 50123\r\n",  # a field missing
    b"PROXY TCP4 192.0.2.7 198.51.100.1 50123 21 9\r\n",  # one too many
    b"PROXY TCP4  192.0.2.7 198.51.100.1 50123 21\r\n",  # two spaces
    b"PROXY TCP4 192.0.2.7 198.51.100.1 050123 21\r\n",  # leading zero
    b"PROXY TCP4 192.0.2.7 198.51.100.1 65536 21\r\n",
    b"PROXY TCP4 192.0.2.7 198.51.100.1 -1 21\r\n",
    b"PROXY TCP4 192.0.2.07 198.51.100.1 1 21\r\n",  # octal-looking octet
    b"PROXY TCP4 2001:db8::7 198.51.100.1 1 21\r\n",  # family mismatch
    b"PROXY TCP6 192.0.2.7 198.51.100.1 1 21\r\n",
    b"PROXY TCP6 fe80::1%eth0 fe80::2 1 21\r\n",  # zone ids are not addresses
    b"PROXY TCP4 host.example 198.51.100.1 1 21\r\n",
    b"PROXY UDP4 192.0.2.7 198.51.100.1 1 21\r\n",
    b"PROXY tcp4 192.0.2.7 198.51.100.1 1 21\r\n",
    b"PROXY\r\n",
    b"PROXY \r\n",
    b"PROXY TCP4 192.0.2.7\xc3\xa9 198.51.100.1 1 21\r\n",
])
def test_v1_malformed_lines_are_refused(line: bytes) -> None:
    with pytest.raises(ProxyHeaderError):
        feed(line + FTP)


def test_v1_garbage_is_refused_before_the_line_could_end() -> None:
    """A wrong protocol word or a control byte is refused as soon as it is seen, not
    after 107 bytes or a timeout."""
    for prefix in (b"PROXY X", b"PROXY TCP5", b"PROXY TCP4 1.2\x00", b"PROXY TCP4 1.2\n"):
        with pytest.raises(ProxyHeaderError):
            parse_proxy_header(prefix)


# ----------------------------------------------------------------------------- v2


def test_v2_tcp4_with_tlvs() -> None:
    tlvs = ((0x02, b"ftp.example.com"), (0x04, b"\x00" * 7), (0x20, b"\x01\x00\x00\x00\x00"))
    data = build_v2(("203.0.113.9", 40000), ("198.51.100.1", 21), tlvs=tlvs)
    header = parse(data + FTP)
    assert header.version == 2 and not header.local
    assert header.source == ("203.0.113.9", 40000)
    assert header.destination == ("198.51.100.1", 21)
    assert header.tlvs == tlvs
    assert header.length == len(data)


def test_v2_tcp6() -> None:
    header = parse(build_v2(("2001:db8::7", 1), ("2001:db8::1", 990)))
    assert header.source == ("2001:db8::7", 1) and header.destination == ("2001:db8::1", 990)
    assert header.length == 16 + 36


def test_v2_ipv4_mapped_source_stays_as_sent() -> None:
    header = parse(build_v2(("::ffff:192.0.2.7", 5), ("::ffff:198.51.100.1", 21)))
    assert header.source == ("::ffff:c000:207", 5)
    assert ipaddress.ip_address(header.source[0]).ipv4_mapped == ipaddress.ip_address("192.0.2.7")


@pytest.mark.parametrize("family", [0x00, 0x11, 0x21, 0x31])
def test_v2_local_discards_whatever_follows(family: int) -> None:
    """LOCAL: the balancer's own connection (health check).  Its address block, family
    included, is discarded, even a family PROXY would refuse."""
    body = b"\x01" * 12 if family == 0x11 else b""
    header = parse(v2(0x20, family, body) + FTP)
    assert header.local and header.source is None and header.length == 16 + len(body)
    assert parse(v2(0x20, 0x55, b"ignored") + FTP).local


@pytest.mark.parametrize("family, size", [(0x00, 0), (0x12, 12), (0x22, 36), (0x31, 216), (0x32, 216)])
def test_v2_addresses_a_tcp_session_cannot_use_keep_the_connection_addresses(family: int, size: int) -> None:
    """UNSPEC, UDP, Unix sockets: valid, and the connection's own addresses stand."""
    header = parse(v2(0x21, family, b"\x07" * size + b"\x04\x00\x01z") + FTP)
    assert header.source is None and not header.local
    assert header.tlvs == ((0x04, b"z"),)


@pytest.mark.parametrize("data, reason", [
    (v2(0x11, 0x11, b"\x00" * 12), "version 1"),
    (v2(0x31, 0x11, b"\x00" * 12), "version 3"),
    (v2(0x22, 0x11, b"\x00" * 12), "command"),
    (v2(0x2F, 0x11, b"\x00" * 12), "command"),
    (v2(0x21, 0x13, b"\x00" * 12), "family"),
    (v2(0x21, 0x41, b"\x00" * 12), "family"),
    (v2(0x21, 0x10, b"\x00" * 12), "family"),
    (v2(0x21, 0x11, b"\x00" * 11), "addresses alone take 12"),
    (v2(0x21, 0x21, b"\x00" * 12), "addresses alone take 36"),
    (v2(0x21, 0x11, b"\x00" * 12 + b"\x04\x00"), "truncated"),
    (v2(0x21, 0x11, b"\x00" * 12 + b"\x04\x00\x05abc"), "says 5 bytes"),
])
def test_v2_malformed_headers_are_refused(data: bytes, reason: str) -> None:
    with pytest.raises(ProxyHeaderError, match=reason):
        feed(data + FTP)


def test_v2_length_limit_is_enforced_from_the_fixed_part() -> None:
    """A length beyond the limit is refused from the first 16 bytes: nothing more is
    waited for or held."""
    head = V2_SIGNATURE + b"\x21\x11" + (MAX_V2_PAYLOAD + 1).to_bytes(2, "big")
    with pytest.raises(ProxyHeaderError, match="at most"):
        parse_proxy_header(head)
    with pytest.raises(ProxyHeaderError, match="at most 40"):
        parse_proxy_header(build_v2(("192.0.2.7", 1), tlvs=((4, b"x" * 30),)), max_v2_payload=40)
    big = build_v2(("192.0.2.7", 1), tlvs=((4, b"x" * (MAX_V2_PAYLOAD - 15)),))
    assert parse(big).length == 16 + MAX_V2_PAYLOAD


# ----------------------------------------------------------------------------- both


def test_truncated_headers_ask_for_more_and_never_past_the_end() -> None:
    for data in (build_v1(("192.0.2.7", 50123), ("198.51.100.1", 21)), build_v1(None),
                 build_v2(("192.0.2.7", 1)), build_v2(("2001:db8::7", 1), tlvs=((1, b"h2"),)),
                 build_v2(None)):
        for cut in range(len(data)):
            result = parse_proxy_header(data[:cut])
            assert isinstance(result, Incomplete), (data, cut)
            assert 1 <= result.missing <= len(data) - cut, (data, cut, result)
        assert feed(data + FTP) == (parse(data), len(data))


def test_versions_can_be_restricted() -> None:
    one, two = build_v1(("192.0.2.7", 1)), build_v2(("192.0.2.7", 1))
    assert parse(one, versions=(1,)).version == 1
    assert parse(two, versions=(2,)).version == 2
    with pytest.raises(ProxyHeaderError, match="only v1"):
        parse_proxy_header(two[:3], versions=(1,))
    with pytest.raises(ProxyHeaderError, match="only v2"):
        parse_proxy_header(one[:3], versions=(2,))
    assert parse_proxy_header(b"", versions=(2,)) == Incomplete(16)
    assert parse_proxy_header(b"", versions=(1, 2)) == Incomplete(15)
    with pytest.raises(ValueError):
        parse_proxy_header(one, versions=(3,))


@pytest.mark.parametrize("data", [
    FTP, b"220 hello\r\n", b"\x16\x03\x01\x02\x00\x01", b"GET / HTTP/1.1\r\n", b"\r\n\r\nQUIT\r\n",
    b"\x00" * 20, b"proxy tcp4 1.2.3.4 1.2.3.4 1 1\r\n",
])
def test_garbage_is_refused(data: bytes) -> None:
    with pytest.raises(ProxyHeaderError):
        parse_proxy_header(data)


def test_starts_like_header() -> None:
    assert starts_like_header(b"PROXY TCP4 ...") is True
    assert starts_like_header(V2_SIGNATURE + b"\x21") is True
    assert starts_like_header(b"PROX") is None
    assert starts_like_header(b"\r\n") is None
    assert starts_like_header(b"") is None
    assert starts_like_header(b"PROXYTCP4") is False
    assert starts_like_header(FTP) is False
    assert starts_like_header(b"\r\n\r\nQUIT") is False


def test_builders_refuse_mixed_families() -> None:
    with pytest.raises(ValueError):
        build_v1(("192.0.2.7", 1), ("2001:db8::1", 2))
    with pytest.raises(ValueError):
        build_v2(("192.0.2.7", 1), ("2001:db8::1", 2))


# ----------------------------------------------------------------------------- properties

ADDRESSES = st.one_of(
    st.ip_addresses(v=4).map(lambda a: (4, str(a))), st.ip_addresses(v=6).map(lambda a: (6, str(a)))
)
PORTS = st.integers(0, 65535)
TLVS = st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=40)), max_size=4).map(tuple)


@st.composite
def headers(draw: st.DrawFn) -> tuple[bytes, ProxyHeader]:
    version, source = draw(ADDRESSES)
    destination = str(draw(st.ip_addresses(v=version)))
    sport, dport = draw(PORTS), draw(PORTS)
    kind = draw(st.sampled_from(["v1", "v2", "v1-unknown", "v2-local"]))
    if kind == "v1":
        data = build_v1((source, sport), (destination, dport))
        expected = ProxyHeader(1, len(data), (_norm(source), sport), (_norm(destination), dport))
    elif kind == "v2":
        tlvs = draw(TLVS)
        data = build_v2((source, sport), (destination, dport), tlvs=tlvs)
        expected = ProxyHeader(2, len(data), (_norm(source), sport), (_norm(destination), dport),
                               tlvs=tlvs)
    elif kind == "v1-unknown":
        data = build_v1(None)
        expected = ProxyHeader(1, len(data))
    else:
        data = build_v2(None, tlvs=draw(TLVS))
        expected = ProxyHeader(2, len(data), local=True)
    return data, expected


def _norm(address: str) -> str:
    return str(ipaddress.ip_address(address))


@settings(max_examples=300)
@given(headers(), st.binary(max_size=64))
def test_any_header_round_trips_and_leaves_what_follows(case: tuple[bytes, ProxyHeader], rest: bytes) -> None:
    data, expected = case
    header, taken = feed(data + rest)
    assert header == expected
    assert taken == len(data)


@settings(max_examples=500)
@given(st.binary(max_size=300), st.sampled_from([(1,), (2,), (1, 2)]))
def test_random_bytes_give_a_header_a_need_or_a_header_error(data: bytes, versions: tuple[int, ...]) -> None:
    try:
        result = parse_proxy_header(data, versions=versions)
    except ProxyHeaderError:
        return
    if isinstance(result, Incomplete):
        assert result.missing >= 1
    else:
        assert result.version in versions and result.length <= len(data)


@settings(max_examples=300)
@given(headers(), st.data())
def test_corrupted_headers_never_crash_or_over_read(case: tuple[bytes, ProxyHeader], data: st.DataObject) -> None:
    raw, _ = case
    position = data.draw(st.integers(0, len(raw) - 1))
    corrupted = bytearray(raw)
    corrupted[position] = data.draw(st.integers(0, 255))
    stream = bytes(corrupted) + FTP
    try:
        header, taken = feed(stream)
    except (ProxyHeaderError, EOFError):
        return
    assert taken == header.length <= len(stream)
