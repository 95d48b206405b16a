"""The storage contract, run inside the folders of a mounted tree.

The contract suite's tests that take the ``backend`` fixture run here again against a
:class:`~backends.mounts.MountedPathIO`, inside a folder on local disk and inside one
in memory: a tree of folders must behave as any single store does.
"""

from __future__ import annotations

from pathlib import Path, PurePath, PurePosixPath
from typing import Any

import pytest

from backends import MemoryPathIO, PathIO, PathIONursery
from backends.mounts import Mount, MountTable
from tests.backends import test_contract as contract

_NAMES = [
    name for name, value in vars(contract).items()
    if name.startswith("test_") and callable(value)
    and value.__code__.co_varnames[: value.__code__.co_argcount] == ("backend",)
]
globals().update({name: getattr(contract, name) for name in _NAMES})


@pytest.fixture(params=["disk", "memory"])
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, PurePath]:
    """A tree with / in memory, a disk folder and a memory folder; the tests run in
    one of the folders (a mount point: the directory they are given)."""
    # the tree keeps checksums where its folders' stores do (both of these keep them)
    monkeypatch.setattr(contract, "_KEEPING", (*contract._KEEPING, "mounts"))
    memory = PathIONursery(MemoryPathIO)
    mounts = [
        Mount("/", None, "home"),
        Mount("/disk", "disk", str(tmp_path)),
        Mount("/mem", "mem", "box"),
    ]

    def resolve(mount: Mount) -> tuple[Any, PurePath]:
        if mount.folder == "disk":
            return PathIO, Path(mount.root)
        return memory, PurePosixPath("/", mount.root)

    pio = MountTable(mounts, resolve).path_io()
    return pio, PurePosixPath("/disk" if request.param == "disk" else "/mem")
