"""Fixtures for the fsspec backend: the contract's ``backend`` over fsspec's memory and
local filesystems and over s3fs against the test S3 endpoint.

The S3 endpoint is the one ``tests/s3`` uses (SeaweedFS started on loopback, or
``GATEWAY_TEST_S3_URL``); its fixtures are imported, not copied, so both suites
fail the same way, loudly, when no endpoint can be had.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path, PurePath
from typing import Any

import fsspec
import pytest

from backends import AbstractPathIO, backend_for_root
from tests.s3.conftest import s3_options, s3_prefix  # noqa: F401  (fixtures)

KINDS = ("memory", "local", "s3fs")


def memory_root() -> str:
    """A fresh directory in fsspec's process-wide memory filesystem."""
    return f"fsspec+memory://gw-{uuid.uuid4().hex[:12]}"


def drop_memory_root(url: str) -> None:
    fs = fsspec.filesystem("memory")
    path = "/" + url.split("://", 1)[1]
    if fs.exists(path):
        fs.rm(path, recursive=True)


@pytest.fixture(params=KINDS)
def fsspec_root(request: pytest.FixtureRequest, tmp_path: Path
                ) -> Iterator[tuple[str, str, dict[str, Any] | None]]:
    """(kind, root URL, storage options) of a fresh, empty root of each kind.

    A plain fixture on purpose: the S3 endpoint is a session fixture that starts its
    own loop, which it cannot do from inside a running one.
    """
    kind = request.param
    if kind == "memory":
        url = memory_root()
        yield kind, url, None
        drop_memory_root(url)
    elif kind == "local":
        yield kind, f"fsspec+file://{tmp_path}", None
    else:
        service = request.getfixturevalue("s3_service")
        prefix = request.getfixturevalue("s3_prefix")
        options = request.getfixturevalue("s3_options")
        yield kind, f"fsspec+s3://{service.bucket}/{prefix}", options


@pytest.fixture
async def backend(
    fsspec_root: tuple[str, str, dict[str, Any] | None],
) -> AsyncIterator[tuple[AbstractPathIO[Any], PurePath]]:
    """The contract suite's fixture: an FsspecPathIO on an empty root, and that root."""
    _, url, options = fsspec_root
    factory, root = backend_for_root(url, options)
    try:
        yield factory(), root
    finally:
        await factory.aclose()
