"""Garbage collector settings for a long-running server process.

A server allocates the same few objects per command, millions of times, and frees
almost all of them by reference counting.  With Python's default thresholds the
cycle collector still runs every 700 allocations and, now and then, walks every
object the process holds (tens of milliseconds on a loaded server).  Freezing what
start-up allocated takes it out of every collection, and a higher first threshold
makes the young generation's collections rare.
"""

from __future__ import annotations

import gc

__all__ = ("tune_for_serving",)

#: Allocations (minus frees) between two young-generation collections.
YOUNG_THRESHOLD = 20_000


def tune_for_serving() -> None:
    """Call once, after start-up and before serving (``python -m gateway``,
    ``gateway serve``); a library user decides for their own process."""
    gc.collect()
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
