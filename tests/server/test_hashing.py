"""The hashing machinery on its own: an upload hashed in stages by worker threads gives
hashlib's answer whatever the chunking, holds bounded memory, gives its stages back
however it ends; a stored file is hashed block by block, within a limit."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import zlib

import pytest

from gateway.protocol.hashes import ALGORITHMS, ByteRange
from gateway.server.hashing import (
    INLINE_BYTES,
    Digests,
    HashTooLarge,
    StagePool,
    UploadHasher,
    hash_stream,
    upload_algorithms,
)

MIB = 1 << 20
SHA_CRC = [a for a in ALGORITHMS if a.key in ("sha256", "crc32")]


def expected(data: bytes) -> dict[str, str]:
    return {"sha256": hashlib.sha256(data).hexdigest(), "crc32": f"{zlib.crc32(data):08x}"}


def pool_is_whole(pool: StagePool, count: int) -> bool:
    return pool._left + len(pool._free) == count


@pytest.mark.parametrize("stages", [0, 1, 2, 8])
@pytest.mark.parametrize("depth", [1, 4])
@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_any_chunking_gives_hashlibs_answer(stages: int, depth: int, mode: str) -> None:
    data = os.urandom(INLINE_BYTES + 7 * MIB + 12345)
    pool = StagePool(stages)
    hasher = UploadHasher(SHA_CRC, pool=pool, depth=depth)
    rng = random.Random(stages * 10 + depth)
    position = 0
    while position < len(data):
        size = rng.choice([1, 100, 65536, 262144, MIB, 3 * MIB])
        chunk = bytearray(data[position : position + size])
        if mode == "sync":
            hasher.feed(memoryview(chunk))
        else:
            await hasher.afeed(memoryview(chunk))
        chunk[:] = bytes(len(chunk))  # the caller's buffer is reused at once
        position += size
    assert await hasher.result() == expected(data)
    hasher.close()
    assert pool_is_whole(pool, stages)


async def test_small_uploads_take_no_stage() -> None:
    pool = StagePool(4)
    hasher = UploadHasher(SHA_CRC, pool=pool)
    hasher.feed(b"x" * (INLINE_BYTES - 1))
    assert pool._left == 4 and not pool._free
    assert await hasher.result() == expected(b"x" * (INLINE_BYTES - 1))
    hasher.close()


async def test_an_abandoned_upload_gives_its_stages_back() -> None:
    pool = StagePool(8)
    hasher = UploadHasher(SHA_CRC, pool=pool)
    block = os.urandom(MIB)
    for _ in range(12):
        hasher.feed(block)
    assert pool._left + len(pool._free) < 8  # some are in use
    in_flight = [stage.done for stage in hasher._inflight]
    hasher.close()  # aborted: stages still queued are skipped, and come back
    async with asyncio.timeout(10):
        for done in in_flight:
            await asyncio.wrap_future(done)
    assert pool_is_whole(pool, 8)


async def test_an_upload_holds_at_most_depth_stages() -> None:
    pool = StagePool(32)
    hasher = UploadHasher(SHA_CRC, pool=pool, depth=3)
    for _ in range(20):
        hasher.feed(os.urandom(MIB))
        assert 32 - pool._left - len(pool._free) <= 3
    await hasher.result()
    hasher.close()


async def test_hash_stream_reads_blocks_and_respects_limits() -> None:
    data = os.urandom(3 * MIB + 5)
    position = 0

    async def read(count: int) -> bytes:
        nonlocal position
        block = data[position : position + count]
        position += len(block)
        return block

    digests = Digests(SHA_CRC)
    assert await hash_stream(read, digests, ByteRange()) == len(data)
    assert digests.values() == expected(data)

    position = 10
    digests = Digests(SHA_CRC)
    assert await hash_stream(read, digests, ByteRange(10, 2 * MIB)) == 2 * MIB
    assert digests.values() == expected(data[10 : 10 + 2 * MIB])

    position = 0
    with pytest.raises(HashTooLarge):
        await hash_stream(read, Digests(SHA_CRC), ByteRange(), limit=MIB)


def test_upload_algorithm_settings() -> None:
    assert [a.key for a in upload_algorithms(True)] == ["sha256"]
    assert upload_algorithms(False) == () and upload_algorithms(None) == () and upload_algorithms([]) == ()
    assert [a.key for a in upload_algorithms(["MD5", "sha-256", "md5"])] == ["md5", "sha256"]
    assert [a.key for a in upload_algorithms("crc32")] == ["crc32"]
    with pytest.raises(ValueError, match="unknown checksum algorithm"):
        upload_algorithms(["sha3"])
