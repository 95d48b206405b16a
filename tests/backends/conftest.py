"""Fixtures for the storage contract: each backend contributes only how to build it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path, PurePath, PurePosixPath
from typing import Any

import pytest

from backends import AbstractPathIO, AsyncPathIO, DurablePathIO, MemoryPathIO, PathIO


def _disk(factory: Callable[[], AbstractPathIO[Any]]) -> Callable[[Path], tuple]:
    return lambda tmp_path: (factory(), tmp_path)


_BACKENDS: dict[str, Callable[[Path], tuple[AbstractPathIO[Any], PurePath]]] = {
    "PathIO": _disk(PathIO),
    "AsyncPathIO": _disk(AsyncPathIO),
    "DurablePathIO": _disk(DurablePathIO),
    "DurableAsyncPathIO": _disk(type("DurableAsyncPathIO", (AsyncPathIO,), {"durable": True})),
    "MemoryPathIO": lambda tmp_path: (MemoryPathIO(), PurePosixPath("/")),
}


@pytest.fixture(params=list(_BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[AbstractPathIO[Any], PurePath]:
    """A fresh backend and an empty root directory in it."""
    return _BACKENDS[request.param](tmp_path)


@pytest.fixture(params=["PathIO", "AsyncPathIO"])
def disk_backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[AbstractPathIO[Any], Path]:
    """Only the local-disk backends, for what needs a real filesystem (symlinks, fds)."""
    return _BACKENDS[request.param](tmp_path)
