"""PASV/EPSV formatting and PORT/EPRT/EPSV argument parsing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.protocol.addresses import (
    UnsupportedProtocol,
    format_epsv,
    format_pasv_reply_address,
    parse_eprt,
    parse_epsv_arg,
    parse_port,
)


def test_format_pasv() -> None:
    assert format_pasv_reply_address("127.0.0.1", 8021) == "(127,0,0,1,31,85)"
    assert format_pasv_reply_address("::ffff:10.1.2.3", 65535) == "(10,1,2,3,255,255)"
    assert format_pasv_reply_address("0.0.0.0", 0) == "(0,0,0,0,0,0)"


@pytest.mark.parametrize(
    ("host", "port"), [("::1", 21), ("nothost", 21), ("1.2.3.4", 70000), ("1.2.3.4", -1)]
)
def test_format_pasv_rejects(host: str, port: int) -> None:
    with pytest.raises(ValueError):
        format_pasv_reply_address(host, port)


def test_format_epsv() -> None:
    assert format_epsv(6446) == "(|||6446|)"
    with pytest.raises(ValueError):
        format_epsv(65536)


@given(st.ip_addresses(v=4), st.integers(1, 65535))
def test_pasv_port_round_trip(address: object, port: int) -> None:
    text = format_pasv_reply_address(str(address), port)
    assert text[0] == "(" and text[-1] == ")"
    assert parse_port(text[1:-1]) == (str(address), port)


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("127,0,0,1,31,85", ("127.0.0.1", 8021)),
        ("10,0,0,1,0,1", ("10.0.0.1", 1)),
        (" 192,168,001,010,4,1 ", ("192.168.1.10", 1025)),
    ],
)
def test_parse_port(arg: str, expected: tuple[str, int]) -> None:
    assert parse_port(arg) == expected


@pytest.mark.parametrize(
    "arg",
    ["", "1,2,3,4,5", "1,2,3,4,5,6,7", "256,0,0,1,0,21", "1,2,3,4,0,0", "a,b,c,d,e,f",
     "1,2,3,4,-1,5", "1,2,3,4,+1,5", "1,2,3,4,1_0,5", "1,2,3,4,٣,5", "1,,3,4,5,6",
     "1.2.3.4,5,6"],
)  # fmt: skip
def test_parse_port_rejects(arg: str) -> None:
    with pytest.raises(ValueError):
        parse_port(arg)


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("|1|132.235.1.2|6275|", ("132.235.1.2", 6275)),
        ("|2|::1|6275|", ("::1", 6275)),
        ("|2|1080::8:800:200C:417A|5282|", ("1080::8:800:200c:417a", 5282)),
        ("!1!10.0.0.1!21!", ("10.0.0.1", 21)),
        ("|2|::ffff:1.2.3.4|21|", ("::ffff:102:304", 21)),
    ],
)
def test_parse_eprt(arg: str, expected: tuple[str, int]) -> None:
    assert parse_eprt(arg) == expected


@pytest.mark.parametrize(
    "arg",
    ["", "|", "||", "|1|132.235.1.2|6275", "|1|132.235.1.2|0|", "|1|132.235.1.2|65536|",
     "|1|::1|21|", "|2|1.2.3.4|21|", "|1|1.2.3.4|21|x|", "x1x1.2.3.4x21x", "|1||21|",
     "|1|1.2.3.4|port|", "1|1.2.3.4|21|", "|1|01.2.3.4|21|"],
)  # fmt: skip
def test_parse_eprt_rejects(arg: str) -> None:
    with pytest.raises(ValueError):
        parse_eprt(arg)


def test_parse_eprt_unsupported_protocol() -> None:
    with pytest.raises(UnsupportedProtocol):
        parse_eprt("|3|1.2.3.4|21|")


@given(st.text(max_size=60))
def test_parse_eprt_fuzz_only_value_error(arg: str) -> None:
    try:
        host, port = parse_eprt(arg)
    except ValueError:
        return
    assert 1 <= port <= 65535


@given(st.text(max_size=40))
def test_parse_port_fuzz_only_value_error(arg: str) -> None:
    try:
        host, port = parse_port(arg)
    except ValueError:
        return
    assert 1 <= port <= 65535


@given(st.ip_addresses(), st.integers(1, 65535))
def test_eprt_round_trip(address: object, port: int) -> None:
    proto = 1 if address.version == 4 else 2  # type: ignore[attr-defined]
    assert parse_eprt(f"|{proto}|{address}|{port}|") == (str(address), port)


@pytest.mark.parametrize(
    ("arg", "expected"),
    [("", ""), ("1", "1"), ("2", "2"), ("ALL", "ALL"), ("all", "ALL"), (" 2 ", "2")],
)
def test_parse_epsv_arg(arg: str, expected: str) -> None:
    assert parse_epsv_arg(arg) == expected


def test_parse_epsv_arg_rejects() -> None:
    with pytest.raises(UnsupportedProtocol):
        parse_epsv_arg("3")
    with pytest.raises(ValueError) as info:
        parse_epsv_arg("nope")
    assert not isinstance(info.value, UnsupportedProtocol)
