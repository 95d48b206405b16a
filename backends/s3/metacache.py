"""What the S3 backend recently learned about names, so it does not ask again.

Pure bookkeeping, no I/O.  One :class:`MetaCache` is shared by every root that uses
the same client (one per endpoint and credentials in a process), so a listing made by
one session answers the SIZE of another, and a write made by one is seen by all.

Two kinds of knowledge, both forgotten after ``ttl`` seconds:

- **names**: a path is a file (with its stat and ETag when a listing or a HEAD gave
  them, or only its size when we wrote it ourselves), a directory, or missing;
- **snapshots**: the complete list of a directory's children, from a listing that
  fitted in one page.  A name absent from a fresh snapshot is missing, so writes into
  a directory listed a moment ago need no probe at all.

Our own writes and deletes update both at once.  Another writer to the same bucket
(another node, another program) is seen only when the entry expires: during ``ttl``
seconds a SIZE, MDTM, MLST or a listing of names may describe the object as it was,
and a name created elsewhere may be taken as free (a STOR would then write a file
beside a directory of the same name instead of refusing it).  Data is never served
from here: RETR always reads the object itself.  ``ttl=0`` turns all of it off.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

__all__ = ("Known", "MetaCache", "UNKNOWN")

#: How long a directory found too big for a snapshot is remembered as such.
_BIG_FOR = 60.0


class _Unknown:
    def __repr__(self) -> str:
        return "UNKNOWN"


#: What :meth:`MetaCache.get` answers when it cannot tell.
UNKNOWN: Any = _Unknown()


@dataclass(frozen=True, slots=True)
class Known:
    """A name that exists.  ``stat`` is None when only the kind (and size) is known,
    as after our own upload, whose LastModified S3 does not return.  ``also_dir``: a
    file that has a directory of the same name beside it (S3 allows both)."""

    is_dir: bool
    stat: Any = None
    etag: str | None = None
    size: int | None = None
    also_dir: bool = False

    @property
    def holds_dir(self) -> bool:
        """Whether a directory of this name exists."""
        return self.is_dir or self.also_dir


class MetaCache:
    """Names and directory snapshots, each valid for ``ttl`` seconds, bounded in number."""

    def __init__(self, ttl: float = 5.0, *, max_names: int = 50_000, max_snapshots: int = 2_000,
                 max_snapshot_names: int = 200_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_names = max_names
        self.max_snapshots = max_snapshots
        #: children held by all snapshots together (a snapshot is at most one page)
        self.max_snapshot_names = max_snapshot_names
        self._snapshot_names = 0
        self._clock = clock
        #: path -> (expires, Known or None for missing)
        self._names: OrderedDict[PurePosixPath, tuple[float, Known | None]] = OrderedDict()
        #: directory -> (expires, name -> Known)
        self._snapshots: OrderedDict[PurePosixPath, tuple[float, dict[str, Known]]] = OrderedDict()
        #: directories whose listing did not fit in one page -> until when
        self._big: dict[PurePosixPath, float] = {}

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    # -- reading -----------------------------------------------------------------------

    def get(self, path: PurePosixPath) -> Known | None:
        """What is known of ``path``: a :class:`Known`, None (missing) or ``UNKNOWN``."""
        if not self.enabled:
            return UNKNOWN
        now = self._clock()
        entry = self._names.get(path)
        if entry is not None:
            if entry[0] > now:
                return entry[1]
            del self._names[path]
        children = self.snapshot(path.parent, now)
        if children is not None and path.name:
            return children.get(path.name)
        return UNKNOWN

    def snapshot(self, directory: PurePosixPath, now: float | None = None) -> dict[str, Known] | None:
        """The fresh complete list of ``directory``'s children, or None."""
        if not self.enabled:
            return None
        now = self._clock() if now is None else now
        entry = self._snapshots.get(directory)
        if entry is None:
            return None
        if entry[0] <= now:
            self._drop_snapshot(directory)
            return None
        return entry[1]

    def is_dir(self, path: PurePosixPath) -> bool:
        known = self.get(path)
        return isinstance(known, Known) and known.holds_dir

    def is_big(self, directory: PurePosixPath) -> bool:
        """Whether ``directory`` recently listed more than one page."""
        until = self._big.get(directory)
        if until is None:
            return False
        if until <= self._clock():
            del self._big[directory]
            return False
        return True

    # -- learning ----------------------------------------------------------------------

    def put(self, path: PurePosixPath, known: Known | None) -> None:
        """Remember what ``path`` is (None: missing), and keep its parent's snapshot true."""
        if not self.enabled:
            return
        self._remember(path, known)
        children = self.snapshot(path.parent)
        if children is not None and path.name:
            before = len(children)
            if known is None:
                children.pop(path.name, None)
            else:
                children[path.name] = known
            self._snapshot_names += len(children) - before

    def put_snapshot(self, directory: PurePosixPath, children: dict[str, Known]) -> None:
        """Remember the complete list of ``directory``'s children (it exists)."""
        if not self.enabled:
            return
        self._drop_snapshot(directory)
        self._snapshots[directory] = (self._clock() + self.ttl, children)
        self._snapshot_names += len(children)
        while self._snapshots and (
            len(self._snapshots) > self.max_snapshots
            or self._snapshot_names > self.max_snapshot_names
        ):
            self._drop_snapshot(next(iter(self._snapshots)))
        self._big.pop(directory, None)
        self._remember(directory, Known(True))

    def put_listed(self, directory: PurePosixPath, entries: Iterable[tuple[str, Known]]) -> None:
        """Entries of one page of a longer listing: each name on its own."""
        if not self.enabled:
            return
        for name, known in entries:
            self._remember(directory / name, known)

    def mark_big(self, directory: PurePosixPath) -> None:
        """``directory`` has more children than one page (kept even with ``ttl=0``:
        it only spares listing a page before each write there)."""
        self._big[directory] = self._clock() + max(_BIG_FOR, self.ttl)
        if len(self._big) > self.max_snapshots:
            self._big.pop(next(iter(self._big)))

    def wrote(self, path: PurePosixPath, size: int | None, etag: str | None = None) -> None:
        """We stored a file: it exists with this size (None: not known) and ETag (when
        the endpoint said it), its parents are directories."""
        if not self.enabled:
            return
        self.put(path, Known(False, size=size, etag=etag))
        self._parents_exist(path)

    def made_dir(self, path: PurePosixPath, *, empty: bool = True) -> None:
        """We made a directory (``empty``: a new one, or one moved here)."""
        if not self.enabled:
            return
        self.put(path, Known(True))
        if empty:
            self.put_snapshot(path, {})
        self._parents_exist(path)

    def removed(self, path: PurePosixPath) -> None:
        """We deleted a file or an empty directory."""
        if not self.enabled:
            return
        self.put(path, None)
        self._drop_snapshot(path)

    def forget_tree(self, path: PurePosixPath) -> None:
        """Nothing at or below ``path`` is known any more (a directory removed or
        moved); say what ``path`` itself is now with :meth:`put` or :meth:`removed`."""
        if not self.enabled:
            return
        for key in [key for key in self._names if key == path or path in key.parents]:
            del self._names[key]
        for key in [key for key in self._snapshots if key == path or path in key.parents]:
            self._drop_snapshot(key)

    def clear(self) -> None:
        self._names.clear()
        self._snapshots.clear()
        self._snapshot_names = 0
        self._big.clear()

    # -- inside --------------------------------------------------------------------------

    def _drop_snapshot(self, directory: PurePosixPath) -> None:
        entry = self._snapshots.pop(directory, None)
        if entry is not None:
            self._snapshot_names -= len(entry[1])

    def _remember(self, path: PurePosixPath, known: Known | None) -> None:
        self._names[path] = (self._clock() + self.ttl, known)
        self._names.move_to_end(path)
        while len(self._names) > self.max_names:
            self._names.popitem(last=False)

    def _parents_exist(self, path: PurePosixPath) -> None:
        for parent in path.parents:
            if len(parent.parts) < 2:  # "/" and above: not a key
                break
            known = self.get(parent)
            if isinstance(known, Known) and known.holds_dir:
                break  # and so are its own parents, as far as we know
            self.put(parent, Known(True))
