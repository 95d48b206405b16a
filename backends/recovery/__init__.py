"""What an interrupted upload leaves behind, found and undone after a crash.

A process that is killed outright (kill -9, the OOM killer, a crash) cannot roll its
uploads back, so the next start does it, root by root:

* local disk: a partial upload (``.<name>.gateway-partial-<hex>``) is garbage and is
  removed; an undo journal (``.<name>.gateway-undo-<hex>``, ``backends.undo``) means an
  append or resume was cut off, so the file gets its previous content back from it,
  then the journal goes;
* S3: incomplete multipart uploads under the root are aborted (``backends.s3.cleanup``);
* memory: nothing survives a process, so nothing is left over.

A temporary is touched only when nothing can still be writing it.  Its writer holds a
file lock on it, so one that is locked is never touched.  Beyond that, it must be older
than ``max_age`` (its last change, and for a journal its file's last change too), since
a lock taken on one machine may not be seen from another sharing the storage.  One
case needs no waiting: a journal written on this very kernel (same boot id) whose lock
its writer held and that can now be taken, because the kernel drops a lock only when
its holder is gone.  That is the restart after a kill -9, and the restore then happens
before clients see the half-written file.

Only names that match the exact shape :func:`backends.local.partial_name` gives are
considered; the walk never follows symbolic links, checks each directory it enters is
the one it listed, and stops after ``max_entries`` entries.  The walk runs in a worker
thread, never on the event loop.  Each action is logged.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

from ..base import PathIONursery
from ..local import PathIO
from ..memory import MemoryPathIO
from .local import DEFAULT_MAX_ENTRIES, LocalRecovery
from .report import Action, RootRecovery, RootReport, record_action

__all__ = (
    "DEFAULT_MAX_ENTRIES",
    "Action",
    "LocalRecovery",
    "RootRecovery",
    "RootReport",
    "record_action",
    "recover_root",
    "recovery_for_root",
)


class _Nothing:
    """Storage that keeps nothing across a restart (memory)."""

    def __init__(self, root: str) -> None:
        self.report = RootReport(root, done=True)

    async def run(self, *, deadline: float | None = None) -> bool:
        return True

    async def aclose(self) -> None:
        pass


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def recovery_for_root(
    root: str | PurePath, max_age: float, *, options: Mapping[str, Any] | None = None,
    dry_run: bool = False, max_entries: int = DEFAULT_MAX_ENTRIES, now: float | None = None,
) -> RootRecovery | None:
    """The recovery of a user's root (a path or URL, as ``backend_for_root`` takes it);
    None for storage it does not cover (fsspec filesystems).

    ``options`` are the server's storage options (endpoint, credentials).  Raises what
    ``backend_for_root`` raises for a root it cannot serve.
    """
    from ..registry import backend_for_root

    text = os.fspath(root) if isinstance(root, PurePath) else root
    match = _SCHEME.match(text) if isinstance(root, str) else None
    if match is not None and match.group(1).lower() not in ("file", "memory", "s3"):
        return None  # fsspec: nothing of its own to recover (and nothing to import)
    factory, real_root = backend_for_root(root, options)
    if factory is PathIO:
        return LocalRecovery(Path(real_root), max_age, dry_run=dry_run,
                             max_entries=max_entries, now=now)
    inner = factory.factory if isinstance(factory, PathIONursery) else factory
    if inner is MemoryPathIO:
        return _Nothing(text)
    if getattr(inner, "backend_name", None) == "s3":
        from ..s3.cleanup import S3Cleanup

        return S3Cleanup(factory, PurePath(real_root), max_age, root_url=text, dry_run=dry_run,
                         max_uploads=max_entries, now=now)
    return None  # a backend registered for these schemes by the application


async def recover_root(
    root: str | PurePath, max_age: float, *, options: Mapping[str, Any] | None = None,
    dry_run: bool = False, max_entries: int = DEFAULT_MAX_ENTRIES,
) -> RootReport | None:
    """Recover one root completely; None for storage recovery does not cover."""
    recovery = recovery_for_root(root, max_age, options=options, dry_run=dry_run,
                                 max_entries=max_entries)
    if recovery is None:
        return None
    try:
        await recovery.run()
    finally:
        await recovery.aclose()
    return recovery.report
