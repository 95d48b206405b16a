"""TYPE A line-end conversion: the result must not depend on where the network or
the storage happened to cut the stream into chunks."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.protocol.ascii import FromNetwork, ToNetwork

#: Bytes rich in line ends, so CR/LF pairs fall on chunk boundaries often.
TEXT = st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b"a", b"xyz", b"\xff"]), max_size=60).map(b"".join)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks, last = [], 0
    for point in points:
        chunks.append(data[last:point])
        last = point
    chunks.append(data[last:])
    return chunks


def _to_network(chunks: list[bytes]) -> bytes:
    converter = ToNetwork()
    return b"".join(converter.feed(chunk) for chunk in chunks)


def _from_network(chunks: list[bytes]) -> bytes:
    converter = FromNetwork()
    return b"".join(converter.feed(chunk) for chunk in chunks) + converter.flush()


def test_known_conversions() -> None:
    assert _to_network([b"a\nb\r\nc\n"]) == b"a\r\nb\r\nc\r\n"
    assert _to_network([b"a\r", b"\nb"]) == b"a\r\nb"  # a CRLF cut in two stays one
    assert _to_network([b"a\r", b"b\n"]) == b"a\rb\r\n"  # a lone CR is left alone
    assert _from_network([b"a\r\nb\r", b"\nc\rd\r"]) == b"a\nb\nc\rd\r"


@given(TEXT, st.lists(st.integers(0, 10_000), max_size=8))
def test_to_network_ignores_chunking(data: bytes, cuts: list[int]) -> None:
    whole = _to_network([data])
    assert _to_network(_split(data, cuts)) == whole
    assert b"\n" not in whole.replace(b"\r\n", b"")  # every LF goes out as CRLF


@given(TEXT, st.lists(st.integers(0, 10_000), max_size=8))
def test_from_network_ignores_chunking(data: bytes, cuts: list[int]) -> None:
    whole = _from_network([data])
    assert _from_network(_split(data, cuts)) == whole
    assert whole.count(b"\n") == data.count(b"\n")  # only CRs of CRLF pairs go
    assert len(data) - len(whole) == data.count(b"\r\n")


@given(TEXT.map(lambda b: b.replace(b"\r", b"")), st.lists(st.integers(0, 10_000), max_size=8))
def test_round_trip_of_unix_text(data: bytes, cuts: list[int]) -> None:
    """A stored LF file downloaded in TYPE A and uploaded back is the same file."""
    wire = _to_network(_split(data, cuts))
    assert _from_network(_split(wire, cuts)) == data
