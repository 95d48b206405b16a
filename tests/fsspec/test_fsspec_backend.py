"""What only the fsspec backend has: URL conventions, options, confinement, sharing and
closing, native async calls for s3fs, S3 directory rules behind s3fs."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from backends import BackendNotInstalled, PathIOError, backend_for_root
from backends.fsspec import FsspecPathIO
from backends.fsspec.options import split_options
from backends.fsspec.urls import parse_root
from backends.registry import options_for_root
from tests.backends.test_contract import cause_of, get, names, put
from tests.s3.conftest import all_keys, raw_client
from tests.s3.seaweed import S3Endpoint

MIB = 1024 * 1024


def test_scheme_convention():
    assert parse_root("fsspec+memory://alice") == ("memory", "memory://alice")
    assert parse_root("fsspec+file:///srv/ftp") == ("file", "file:///srv/ftp")
    assert parse_root("gcs://bucket/p") == ("gcs", "gcs://bucket/p")
    for bad in ("fsspec+://x", "fsspec+s3://b/../c", "fsspec+s3://b/p?key=secret", "nothing"):
        with pytest.raises(ValueError):
            parse_root(bad)


def test_registry_routes_fsspec_prefix_and_unclaimed_schemes(tmp_path: Path):
    factory, root = backend_for_root(f"fsspec+file://{tmp_path}")
    assert isinstance(factory(), FsspecPathIO) and root == PurePosixPath(tmp_path)
    factory, root = backend_for_root("fsspec+s3://bucket/some/prefix/")
    assert factory.state.protocol == "s3" and root == PurePosixPath("/bucket/some/prefix")
    assert factory.state.dir_markers and factory.state.is_async
    with pytest.raises(ValueError, match="bucket"):
        backend_for_root("fsspec+s3://")


@pytest.mark.parametrize(("root", "extra"), [("gcs://b/p", "gcs"), ("fsspec+az://c/p", "azure")])
def test_missing_package_names_the_extra(root: str, extra: str):
    with pytest.raises(BackendNotInstalled, match=rf"pip install 'gateway\[{extra}\]'"):
        backend_for_root(root)


def test_unknown_protocol_is_a_clear_error():
    with pytest.raises(ValueError, match="no filesystem for the protocol 'nosuchfs'"):
        backend_for_root("fsspec+nosuchfs://x")


def test_options_native_s3_names_become_s3fs_arguments():
    settings, kwargs = split_options("s3", {
        "endpoint_url": "http://127.0.0.1:9", "aws_access_key_id": "k",
        "aws_secret_access_key": "s", "region_name": "eu-west-1", "addressing_style": "path",
        "part_size": 6 * MIB, "list_page_size": 10, "fsspec_readahead": 2,
    })
    assert kwargs == {
        "endpoint_url": "http://127.0.0.1:9", "key": "k", "secret": "s",
        "client_kwargs": {"region_name": "eu-west-1"},
        "config_kwargs": {"s3": {"addressing_style": "path"}}, "use_listings_cache": False,
    }
    assert settings.part_size == 6 * MIB and settings.readahead == 2
    # the same options on another protocol: S3-only names are dropped
    _, kwargs = split_options("memory", {"aws_access_key_id": "k", "custom": 1})
    assert kwargs == {"custom": 1}
    with pytest.raises(ValueError, match="fsspec_nonsense"):
        split_options("memory", {"fsspec_nonsense": 1})


def test_options_sections_per_root():
    options = {
        "endpoint_url": "http://shared",
        "fsspec+gcs://": {"project": "p1"},
        "fsspec+gcs://bucket/carol": {"project": "p2"},
    }
    assert options_for_root("s3://b/alice", options) == {"endpoint_url": "http://shared"}
    assert options_for_root("fsspec+gcs://other", options)["project"] == "p1"
    assert options_for_root("fsspec+gcs://bucket/carol/x", options)["project"] == "p2"
    assert options_for_root("fsspec+gcs://bucket/carolyn", options)["project"] == "p1"
    plain = {"a": 1}
    assert options_for_root("s3://b", plain) is plain


async def test_paths_outside_the_root_are_refused(tmp_path: Path):
    (tmp_path / "root").mkdir()
    (tmp_path / "secret").write_bytes(b"x")
    factory, root = backend_for_root(f"fsspec+file://{tmp_path / 'root'}")
    pio = factory()
    try:
        for attempt in (root / ".." / "secret", PurePosixPath(tmp_path / "secret")):
            with pytest.raises(PathIOError) as excinfo:
                await pio.exists(attempt)
            assert isinstance(cause_of(excinfo), PermissionError)
            with pytest.raises(PathIOError):
                await pio.open(attempt)
        assert await pio.exists(root / "sub" / ".." / ".")  # stays inside: fine
    finally:
        await factory.aclose()


async def test_local_reads_offer_the_os_file_for_sendfile(tmp_path: Path):
    factory, root = backend_for_root(f"fsspec+file://{tmp_path}")
    pio = factory()
    try:
        await put(pio, root / "f", b"abc")
        async with pio.open(root / "f") as f:
            assert os.read(f.raw_file.fileno(), 3) == b"abc"
        async with pio.open(root / "g", "wb") as f:
            assert f.raw_file is None
    finally:
        await factory.aclose()


async def test_one_filesystem_per_root_shared_and_closed(tmp_path: Path):
    factory, root = backend_for_root(f"fsspec+file://{tmp_path}")
    first, second = factory(), factory(timeout=5)
    await put(first, root / "f", b"shared")
    assert await get(second, root / "f") == b"shared"
    assert first.state is second.state
    fs = await first.state.filesystem()
    assert fs is await second.state.filesystem()
    await factory.aclose()
    with pytest.raises(PathIOError) as excinfo:
        await first.exists(root / "f")
    assert isinstance(cause_of(excinfo), ConnectionError)


# -- s3fs -------------------------------------------------------------------------------------


@pytest.fixture
async def s3fs_backend(s3_service: S3Endpoint, s3_options: dict[str, Any], s3_prefix: str):
    factory, root = backend_for_root(f"fsspec+s3://{s3_service.bucket}/{s3_prefix}", s3_options)
    try:
        yield factory(), root
    finally:
        await factory.aclose()


async def test_s3fs_calls_are_native_coroutines_on_the_loop(s3fs_backend):
    pio, root = s3fs_backend
    data = os.urandom(12 * MIB)  # several parts of the test part size
    await put(pio, root / "big", data)
    assert hashlib.sha256(await get(pio, root / "big")).digest() == hashlib.sha256(data).digest()
    await pio.mkdir(root / "d")
    assert await names(pio, root) == {"big", "d"}
    # no thread pool was ever needed: every call awaited s3fs's own coroutines
    assert pio.state._executor is None
    fs = await pio.state.filesystem()
    assert fs.asynchronous
    assert pio.state.is_async


async def test_s3fs_directories_follow_native_s3_rules(s3fs_backend, s3_service, s3_prefix):
    pio, root = s3fs_backend
    bucket = s3_service.bucket
    async with raw_client(s3_service) as client:
        # a directory that exists only because a key is below it
        await client.put_object(Bucket=bucket, Key=f"{s3_prefix}/implicit/deep/f", Body=b"1")
        assert await pio.is_dir(root / "implicit")
        assert await pio.is_dir(root / "implicit" / "deep")
        assert await names(pio, root / "implicit") == {"deep"}
        # MKD persists an empty directory as a marker object
        await pio.mkdir(root / "empty")
        assert f"{s3_prefix}/empty/" in await all_keys(client, bucket, f"{s3_prefix}/")
        assert await names(pio, root / "empty") == set()
        assert await pio.is_dir(root / "empty") and not await pio.is_file(root / "empty")
        await pio.rename(root / "empty", root / "moved")
        keys = await all_keys(client, bucket, f"{s3_prefix}/")
        assert f"{s3_prefix}/moved/" in keys and f"{s3_prefix}/empty/" not in keys
        await pio.rmdir(root / "moved")
        with pytest.raises(PathIOError) as excinfo:
            await pio.rmdir(root / "implicit")
        assert cause_of(excinfo).errno == errno.ENOTEMPTY
        assert sorted(await all_keys(client, bucket, f"{s3_prefix}/")) == [
            f"{s3_prefix}/implicit/deep/f"
        ]


async def test_s3fs_large_upload_is_multipart_and_failed_one_leaves_nothing(
    s3fs_backend, s3_service, s3_prefix
):
    pio, root = s3fs_backend
    await put(pio, root / "multi", os.urandom(11 * MIB))
    async with raw_client(s3_service) as client:
        head = await client.head_object(Bucket=s3_service.bucket, Key=f"{s3_prefix}/multi")
        assert head["ETag"].strip('"').endswith("-3"), head["ETag"]  # 5 + 5 + 1 MiB parts
        with pytest.raises(RuntimeError):
            async with pio.open(root / "failed", "wb") as f:
                await f.write(os.urandom(11 * MIB))
                raise RuntimeError("the client went away")
        assert await all_keys(client, s3_service.bucket, f"{s3_prefix}/") == [f"{s3_prefix}/multi"]
        # (s3_prefix's teardown also checks that no multipart upload was left open)
