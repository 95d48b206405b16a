"""Which files are being written right now, server-wide.

Two uploads into one file at once cannot both be right: an aborted APPE rolls back
to the length it started from and would take another client's acknowledged record
with it, and two STOU reserving the same free name would overwrite each other.  So a
file has one writer at a time; a second gets 450 "file busy" and may retry.  Keys
are the storage's own path plus the storage it lives in, so two users whose roots
overlap still see each other's writers.
"""

from __future__ import annotations

from collections.abc import Hashable

__all__ = ("ActiveWriters",)


class ActiveWriters:
    """The set of files with an upload in progress."""

    def __init__(self) -> None:
        self._busy: set[Hashable] = set()

    def claim(self, key: Hashable) -> bool:
        """Take ``key`` for one writer; False when another writer has it."""
        if key in self._busy:
            return False
        self._busy.add(key)
        return True

    def release(self, key: Hashable) -> None:
        self._busy.discard(key)

    def __contains__(self, key: object) -> bool:
        return key in self._busy

    def __len__(self) -> int:
        return len(self._busy)
