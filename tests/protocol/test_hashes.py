"""HASH, RANG and the legacy checksum commands as pure functions; stored-checksum records."""

from __future__ import annotations

import hashlib
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backends.checksums import ChecksumMemo, clean_values, decode_record, encode_record
from gateway.protocol.hashes import (
    ALGORITHMS,
    DEFAULT_ALGORITHM,
    WHOLE_FILE,
    ByteRange,
    Crc32,
    algorithm_named,
    feat_hash_line,
    format_hash_reply,
    format_legacy_reply,
    parse_legacy_argument,
    parse_rang,
    rang_range,
    range_after,
    session_feat_line,
)


@pytest.mark.parametrize(
    ("name", "key"),
    [("SHA-256", "sha256"), ("sha-256", "sha256"), ("SHA256", "sha256"), ("sha512", "sha512"),
     ("Sha-1", "sha1"), ("md5", "md5"), ("CRC32", "crc32"), ("crc-32", "crc32")],
)
def test_algorithm_names(name: str, key: str) -> None:
    algorithm = algorithm_named(name)
    assert algorithm is not None and algorithm.key == key


@pytest.mark.parametrize("name", ["", "CRC-37", "sha-3", "md4", "SHA 256"])
def test_unknown_algorithms(name: str) -> None:
    assert algorithm_named(name) is None


def test_digests_agree_with_hashlib_and_zlib() -> None:
    data = bytes(range(256)) * 1000
    for algorithm in ALGORITHMS:
        digest = algorithm.new()
        digest.update(data[:1000])
        digest.update(memoryview(data)[1000:])
        if algorithm.key == "crc32":
            assert digest.hexdigest() == f"{zlib.crc32(data):08x}"
        else:
            assert digest.hexdigest() == hashlib.new(algorithm.key, data).hexdigest()
    assert Crc32().hexdigest() == "00000000"


def test_feat_line_stars_the_selected_algorithm() -> None:
    assert DEFAULT_ALGORITHM.name == "SHA-256"
    assert feat_hash_line() == "HASH SHA-256*;SHA-512;SHA-1;MD5;CRC32"
    md5 = algorithm_named("md5")
    assert md5 is not None
    assert feat_hash_line(md5) == "HASH SHA-256;SHA-512;SHA-1;MD5*;CRC32"
    assert session_feat_line("HASH SHA-256*;SHA-512;SHA-1;MD5;CRC32", md5) == feat_hash_line(md5)
    assert session_feat_line("UTF8", md5) == "UTF8"


def test_rang() -> None:
    assert parse_rang("0 49") == (0, 49)
    assert parse_rang("  7   7 ") == (7, 7)
    assert parse_rang("1 0") is None  # the draft's reset
    assert rang_range(None) == WHOLE_FILE
    assert rang_range((10, 19)) == ByteRange(10, 10)
    for bad in ("", "5", "5 2", "a b", "1 2 3", "-1 4", "1 ²", "1" * 25 + " 2"):
        with pytest.raises(ValueError):
            parse_rang(bad)


def test_what_commands_do_to_a_rang_selection() -> None:
    assert range_after("hash") == "keep"
    assert range_after("epsv") == "keep"
    assert range_after("retr") == "refuse"
    assert range_after("stor") == "refuse"
    assert range_after("noop") == "drop"
    assert range_after("xcrc") == "drop"


@pytest.mark.parametrize(
    ("argument", "path", "byte_range"),
    [
        ("file.bin", "file.bin", WHOLE_FILE),
        ("file.bin 0 5", "file.bin", ByteRange(0, 5)),
        ("dir/file.bin 10 20", "dir/file.bin", ByteRange(10, 10)),
        ("my file.bin 3 3", "my file.bin", ByteRange(3, 0)),
        ('"my file.bin" 0 5', "my file.bin", ByteRange(0, 5)),
        ('"my file 1 2"', "my file 1 2", WHOLE_FILE),
        ("report 2024", "report 2024", WHOLE_FILE),  # one number: part of the name
        ("0 5", "0 5", WHOLE_FILE),  # no name before the numbers: all name
        (" spaced name ", " spaced name ", WHOLE_FILE),
    ],
)
def test_legacy_arguments(argument: str, path: str, byte_range: ByteRange) -> None:
    assert parse_legacy_argument(argument) == (path, byte_range)


@pytest.mark.parametrize("argument", ['"unterminated 0 5', '"name" 5', '"name" 5 x', "f 9 3", '"f" 9 3'])
def test_bad_legacy_arguments(argument: str) -> None:
    with pytest.raises(ValueError):
        parse_legacy_argument(argument)


@given(st.text(max_size=60))
def test_legacy_parsing_never_fails_unexpectedly(argument: str) -> None:
    try:
        path, byte_range = parse_legacy_argument(argument)
    except ValueError:
        return
    assert byte_range.start >= 0 and (byte_range.count is None or byte_range.count >= 0)
    assert path in argument


def test_ranges_cover() -> None:
    assert WHOLE_FILE.covers(0) and WHOLE_FILE.covers(10)
    assert ByteRange(0, 10).covers(10) and ByteRange(0, 11).covers(10)
    assert not ByteRange(0, 9).covers(10) and not ByteRange(1).covers(10)


def test_replies() -> None:
    sha = algorithm_named("sha-256")
    assert sha is not None
    assert format_hash_reply(sha, 0, 100, "ABCD", "f.txt") == "SHA-256 0-99 abcd f.txt"
    assert format_hash_reply(sha, 10, 40, "ab", "a b") == "SHA-256 10-49 ab a b"
    assert format_hash_reply(sha, 0, 0, "ab", "empty") == "SHA-256 0-0 ab empty"
    assert format_legacy_reply("9f9841c2") == "9F9841C2"


# ----------------------------------------------------------------------------- storage records


def test_checksum_records_round_trip() -> None:
    values = {"sha256": "a" * 64, "crc32": "0123abcd"}
    stamp = {"size": 10, "mtime_ns": 1_700_000_000_000_000_000}
    raw = encode_record(values, stamp)
    assert raw.startswith(b"gateway-checksums/1 size=10 mtime_ns=")
    assert decode_record(raw) == (stamp, values)


@pytest.mark.parametrize(
    "raw",
    [b"", b"garbage", b"gateway-checksums/2 size=1", b"gateway-checksums/1 size=x",
     b"gateway-checksums/1 size", b"\xff\xfe"],
)
def test_foreign_records_are_ignored(raw: bytes) -> None:
    assert decode_record(raw) is None


def test_only_well_formed_values_are_kept() -> None:
    assert clean_values({"SHA256": "A" * 64, "md5": "short", "crc32": "zzzzzzzz", "other": "1"}) == {
        "sha256": "a" * 64
    }


def test_memo_is_bounded_and_merges() -> None:
    memo = ChecksumMemo(max_entries=2)
    memo.add(1, {"crc32": "00000001"})
    memo.add(1, {"md5": "1" * 32})
    assert memo.get(1) == {"crc32": "00000001", "md5": "1" * 32}
    memo.add(2, {"crc32": "00000002"})
    memo.add(3, {"crc32": "00000003"})
    assert memo.get(1) == {} and memo.get(3) == {"crc32": "00000003"}
    memo.move(3, 4)
    assert memo.get(4) == {"crc32": "00000003"}
    memo.forget([4])
    assert memo.get(4) == {}
