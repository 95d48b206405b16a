"""The storage contract against S3, then what only S3 has.

The contract tests are the very functions of ``tests/backends/test_contract.py``
(every test taking the ``backend`` fixture), collected here again with this
directory's ``backend`` fixture: an S3PathIO on a fresh prefix of a real endpoint.
"""

from __future__ import annotations

import inspect

import pytest

from tests.backends import test_contract as contract

for _name, _test in vars(contract).items():
    if _name.startswith("test_") and "backend" in inspect.signature(_test).parameters:
        globals()[_name] = _test
del _name, _test




# -- what only S3 has ------------------------------------------------------------------

import asyncio  # noqa: E402
import errno  # noqa: E402
import hashlib  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import stat as stat_module  # noqa: E402
from pathlib import PurePosixPath  # noqa: E402
from typing import Any  # noqa: E402

from aiohttp import web  # noqa: E402

from backends import PathIOError, backend_for_root  # noqa: E402
from backends.s3 import (  # noqa: E402
    WRITE_BUFFERS,
    S3PathIO,
    S3Settings,
    UnsupportedWrite,
    keys,  # noqa: E402
)
from backends.s3 import client as s3_client  # noqa: E402

from .conftest import MIB, PART_SIZE, PARTS_IN_FLIGHT, all_keys, open_uploads, raw_client  # noqa: E402

put, get, names, cause_of, Boom = contract.put, contract.get, contract.names, contract.cause_of, contract.Boom


def where(root: PurePosixPath) -> tuple[str, str]:
    location = keys.locate(root)
    return location.bucket, location.prefix


class Calls:
    """Counts requests by operation on the backend's shared client."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def __call__(self, model: Any = None, **_: Any) -> None:
        self.counts[model.name] = self.counts.get(model.name, 0) + 1

    def __getitem__(self, operation: str) -> int:
        return self.counts.get(operation, 0)


async def count_calls(pio: S3PathIO) -> Calls:
    calls = Calls()
    client = await pio.state.client()
    client.meta.events.register("before-call.s3", calls)
    return calls


async def write_chunks(pio: Any, path: Any, data: bytes, chunk: int = MIB) -> None:
    async with pio.open(path, "wb") as f:
        for offset in range(0, len(data), chunk):
            await f.write(data[offset : offset + chunk])


async def test_multipart_upload_in_bounded_memory(backend, s3_service):
    pio, root = backend
    data = os.urandom(4 * PART_SIZE + 123)
    calls = await count_calls(pio)
    WRITE_BUFFERS.reset()
    await write_chunks(pio, root / "big", data)
    assert WRITE_BUFFERS.writer_peak <= PART_SIZE * PARTS_IN_FLIGHT
    assert WRITE_BUFFERS.current == 0
    assert calls["UploadPart"] == 5 and calls["CompleteMultipartUpload"] == 1
    assert calls["PutObject"] == 0
    bucket, prefix = where(root)
    async with raw_client(s3_service) as client:
        head = await client.head_object(Bucket=bucket, Key=prefix + "big")
        assert head["ETag"].strip('"').endswith("-5")  # a 5-part multipart object
    assert hashlib.sha256(await get(pio, root / "big")).digest() == hashlib.sha256(data).digest()


async def test_small_file_is_one_put_and_empty_file_exists(backend):
    pio, root = backend
    calls = await count_calls(pio)
    await put(pio, root / "small", b"x" * 1000)
    await put(pio, root / "empty", b"")
    assert calls["PutObject"] == 2 and calls["CreateMultipartUpload"] == 0
    assert (await pio.stat(root / "empty")).st_size == 0
    assert await get(pio, root / "small") == b"x" * 1000


@pytest.mark.parametrize("how", ["exception", "cancel"])
async def test_failed_multipart_upload_leaves_nothing(backend, s3_service, how):
    pio, root = backend
    sent = asyncio.Event()

    async def upload() -> None:
        async with pio.open(root / "f", "wb") as f:
            for _ in range(3 * PART_SIZE // MIB):
                await f.write(os.urandom(MIB))
            sent.set()
            if how == "exception":
                raise Boom
            await asyncio.Event().wait()

    task = asyncio.create_task(upload())
    await sent.wait()
    task.cancel() if how == "cancel" else None
    with pytest.raises(Boom if how == "exception" else asyncio.CancelledError):
        await task
    bucket, prefix = where(root)
    async with raw_client(s3_service) as client:
        assert await open_uploads(client, bucket, prefix) == []
        assert await all_keys(client, bucket, prefix) == []
    assert WRITE_BUFFERS.current == 0


async def test_append_to_large_object_copies_on_the_server(backend):
    pio, root = backend
    old = os.urandom(PART_SIZE + 10)
    await write_chunks(pio, root / "f", old)
    calls = await count_calls(pio)
    WRITE_BUFFERS.reset()
    async with pio.open(root / "f", "ab") as f:
        await f.write(b"tail")
    assert calls["UploadPartCopy"] == 1 and calls["GetObject"] == 0
    assert WRITE_BUFFERS.writer_peak < MIB  # the old bytes never came through us
    assert await get(pio, root / "f") == old + b"tail"


async def test_resume_at_an_offset(backend, s3_service):
    pio, root = backend
    await put(pio, root / "f", b"0123456789")
    # continue at the end, and re-send a tail that reaches past the old end
    async with pio.open(root / "f", "r+b") as f:
        await f.seek(10)
        await f.write(b"AB")
    async with pio.open(root / "f", "r+b") as f:
        await f.seek(4)
        await f.write(b"xxxxxxxxxx")
    assert await get(pio, root / "f") == b"0123xxxxxxxxxx"
    # a resume that would keep stale old bytes after the new ones is refused
    with pytest.raises(PathIOError) as excinfo:
        async with pio.open(root / "f", "r+b") as f:
            await f.seek(2)
            await f.write(b"yy")
    cause = cause_of(excinfo)
    assert isinstance(cause, UnsupportedWrite) and cause.errno == errno.EOPNOTSUPP
    # and so is a start beyond the end
    with pytest.raises(PathIOError) as excinfo:
        async with pio.open(root / "f", "r+b") as f:
            await f.seek(100)
    assert isinstance(cause_of(excinfo), UnsupportedWrite)
    assert await get(pio, root / "f") == b"0123xxxxxxxxxx"
    bucket, prefix = where(root)
    async with raw_client(s3_service) as client:
        assert await open_uploads(client, bucket, prefix) == []


async def test_resume_rollback_leaves_object(backend):
    pio, root = backend
    await put(pio, root / "f", b"abcXYZ123")
    f = await pio.open(root / "f", "r+b")
    await f.seek(6)
    await f.write(b"!!!!!!")
    await f.abort()
    assert await get(pio, root / "f") == b"abcXYZ123"  # untouched: stronger than disk


async def test_read_with_range_after_seek_and_object_replaced(backend):
    pio, root = backend
    data = os.urandom(3 * MIB)
    await write_chunks(pio, root / "f", data)
    calls = await count_calls(pio)
    async with pio.open(root / "f") as f:
        await f.seek(MIB + 5)
        assert await f.read(10) == data[MIB + 5 : MIB + 15]
        assert await f.read(-1) == data[MIB + 15 :]
        assert await f.read(10) == b""
    # the open's GetObject (from byte 0) is dropped by the seek, one with a Range follows
    assert calls["GetObject"] == 2 and calls["HeadObject"] == 0
    async with pio.open(root / "f") as f:
        assert await f.read(100) == data[:100]
        await put(pio, root / "f", b"replaced")
        await f.seek(200)  # the next GetObject carries If-Match: the object changed
        with pytest.raises(PathIOError) as excinfo:
            await f.read(100)
    cause = cause_of(excinfo)
    assert isinstance(cause, OSError) and cause.errno == errno.ESTALE


async def test_listing_streams_pages_and_needs_no_head(backend, s3_service):
    pio, root = backend
    bucket, prefix = where(root)
    async with raw_client(s3_service) as client:
        limit = asyncio.Semaphore(16)

        async def create(i: int) -> None:
            async with limit:
                await client.put_object(Bucket=bucket, Key=f"{prefix}d/f{i:03}", Body=b"12")

        await asyncio.gather(*(create(i) for i in range(250)))
        await client.put_object(Bucket=bucket, Key=f"{prefix}d/", Body=b"")
        await client.put_object(Bucket=bucket, Key=f"{prefix}d/sub/deep", Body=b"")
    calls = await count_calls(pio)
    seen = []
    async for path in pio.list(root / "d"):
        if not seen:
            assert calls["ListObjectsV2"] == 1  # the first entry before page 2 is asked for
        stats = await pio.stat(path)
        seen.append((path.name, stats.st_size))
    assert calls["ListObjectsV2"] == 3  # 251 entries, 100 a page
    assert calls["HeadObject"] == 0  # stats came with the pages
    assert len(seen) == 251 and ("sub", 0) in seen and ("f249", 2) in seen
    assert "d" not in {name for name, _ in seen}  # the marker is not an entry


async def test_directories_are_prefixes(backend, s3_service):
    pio, root = backend
    bucket, prefix = where(root)
    await pio.mkdir(root / "made")
    async with raw_client(s3_service) as client:
        assert await all_keys(client, bucket, prefix) == [prefix + "made/"]
        await client.put_object(Bucket=bucket, Key=prefix + "implied/x", Body=b"1")
    # written behind the backend's back: a writer's check trusts the listing it
    # remembers, a stat (CWD, SIZE, MLST) asks again before answering "no such name"
    assert not await pio.is_dir(root / "implied")
    assert stat_module.S_ISDIR((await pio.stat(root / "implied")).st_mode)
    assert await pio.is_dir(root / "implied") and not await pio.is_file(root / "implied")
    assert await names(pio, root) == {"made", "implied"}
    assert await names(pio, root / "made") == set()
    with pytest.raises(PathIOError) as excinfo:
        await pio.rmdir(root / "implied")
    assert cause_of(excinfo).errno == errno.ENOTEMPTY
    await pio.unlink(root / "implied" / "x")
    assert await pio.is_dir(root) and await pio.exists(root)  # the root always exists


async def test_rename_tree_moves_every_key(backend, s3_service):
    pio, root = backend
    bucket, prefix = where(root)
    await pio.mkdir(root / "a" / "empty", parents=True)
    await pio.mkdir(root / "a" / "b" / "c", parents=True)
    for name in ("a/f", "a/b/g", "a/b/c/h"):
        await put(pio, root / name, name.encode())
    await pio.rename(root / "a", root / "z")
    async with raw_client(s3_service) as client:
        remaining = await all_keys(client, bucket, prefix)
    assert not [key for key in remaining if key.startswith(prefix + "a/")]
    assert await names(pio, root) == {"z"}
    assert await names(pio, root / "z") == {"f", "b", "empty"}
    assert await get(pio, root / "z" / "b" / "c" / "h") == b"a/b/c/h"
    await pio.mkdir(root / "full")
    await put(pio, root / "full" / "x", b"")
    with pytest.raises(PathIOError) as excinfo:
        await pio.rename(root / "z", root / "full")
    assert cause_of(excinfo).errno == errno.ENOTEMPTY


# -- errors by meaning ------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _stat_cause(url: str, options: dict[str, Any]) -> BaseException:
    factory, root = backend_for_root(url, options)
    try:
        with pytest.raises(PathIOError) as excinfo:
            await factory().stat(root / "x")
        return cause_of(excinfo)
    finally:
        await factory.aclose()


async def test_unreachable_endpoint_is_connection_error(s3_service):
    options = s3_service.options(
        endpoint_url=f"http://127.0.0.1:{_closed_port()}", max_attempts=2, connect_timeout=1
    )
    cause = await _stat_cause("s3://bucket/p", options)
    assert isinstance(cause, ConnectionError)
    assert "botocore" not in type(cause).__module__


async def test_slow_down_is_retried_then_connection_error(s3_service):
    requests = 0

    async def slow_down(request: web.Request) -> web.Response:
        nonlocal requests
        requests += 1
        body = "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
        return web.Response(status=503, text=body, content_type="application/xml")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", slow_down)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        options = s3_service.options(endpoint_url=f"http://127.0.0.1:{port}", max_attempts=2)
        cause = await _stat_cause("s3://bucket/p", options)
    finally:
        await runner.cleanup()
    assert isinstance(cause, ConnectionError)
    assert requests >= 2  # retried (with backoff) before giving up


async def test_wrong_secret_is_permission_error(s3_service):
    options = s3_service.options(aws_secret_access_key="wrong", max_attempts=1)
    cause = await _stat_cause(f"s3://{s3_service.bucket}/p", options)
    assert isinstance(cause, PermissionError)


# -- configuration, sharing, keys ---------------------------------------------------------


async def test_roots_on_one_endpoint_share_one_client(s3_service):
    options = s3_service.options()
    first, first_root = backend_for_root(f"s3://{s3_service.bucket}/alice/", options)
    second, second_root = backend_for_root(f"s3://{s3_service.bucket}", options)
    assert first_root == PurePosixPath(f"/{s3_service.bucket}/alice")
    assert second_root == PurePosixPath(f"/{s3_service.bucket}")
    one, two = first(), second()
    assert await one.state.client() is await two.state.client()
    assert first() .state is one.state  # sessions of one root share its store
    key = S3Settings.from_options(options).client_key()
    assert s3_client._CLIENTS[key].references == 2
    await first.aclose()
    assert await two.exists(second_root)
    await second.aclose()
    assert key not in s3_client._CLIENTS


def test_settings_from_environment_and_validation(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    settings = S3Settings.from_options({"part_size": str(16 * MIB)})
    assert settings.endpoint_url == "http://127.0.0.1:9" and settings.region_name == "eu-west-3"
    assert settings.part_size == 16 * MIB and settings.parts_in_flight == 4
    for bad in ({"part_size": MIB}, {"parts_in_flight": 0}, {"addressing_style": "odd"},
                {"no_such_option": 1}):
        with pytest.raises(ValueError):
            S3Settings.from_options(bad)


def test_keys_mapping():
    assert keys.locate(PurePosixPath("/b/a/c")) == keys.Location("b", "a/c")
    assert keys.locate(PurePosixPath("/b")) == keys.Location("b", "")
    assert keys.locate(PurePosixPath("/")) == keys.Location("", "")
    assert keys.locate(PurePosixPath("/b/a/../c")).key == "c"
    directory = keys.Location("b", "a")
    assert directory.prefix == "a/" and directory.marker == "a/"
    assert keys.child_name(directory, "a/x") == "x"
    assert keys.child_name(directory, "a/sub/") == "sub"
    assert keys.child_name(directory, "a/") is None  # the marker itself
    assert keys.child_name(directory, "a//odd") is None
    assert keys.child_name(keys.Location("b", ""), "top/") == "top"
    assert keys.parse_url("s3://bucket/some//prefix/") == ("bucket", "some/prefix")
    assert keys.path_of("bucket", "a/b/") == PurePosixPath("/bucket/a/b")
    for bad in ("s3://", "s3:///x", "s3://b/../x", "s3://b/p?x=1", "gs://b"):
        with pytest.raises(ValueError):
            keys.parse_url(bad)
    with pytest.raises(OSError):
        keys.locate(PurePosixPath("/b/" + "k" * 1100))


async def test_exclusive_multipart_upload_refuses_a_key_taken_meanwhile(backend, s3_service):
    # a large STOU: CompleteMultipartUpload carries If-None-Match, and the refused
    # upload is aborted (no parts left behind)
    pio, root = backend
    data = os.urandom(PART_SIZE + 5)
    f = await pio.open(root / "big", "xb")
    for offset in range(0, len(data), MIB):
        await f.write(data[offset : offset + MIB])
    await put(pio, root / "big", b"first")
    with pytest.raises(PathIOError) as excinfo:
        await f.close()
    assert isinstance(cause_of(excinfo), FileExistsError)
    assert await get(pio, root / "big") == b"first"
    bucket, prefix = where(root)
    async with raw_client(s3_service) as client:
        assert await open_uploads(client, bucket, prefix) == []
