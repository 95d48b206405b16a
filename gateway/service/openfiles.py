"""Open files: the limit every session counts against, raised at start and watched.

Each control connection holds a descriptor, each running transfer three or four more.
Most systems start services with a soft limit of 1,024 and a hard limit far above it:
a server stuck at the soft limit turns clients away after about a thousand sessions,
and the kernel says nothing about it (new connections wait in the listen queue, never
greeted).  So ``gateway serve`` raises its soft limit to the hard one at start, says
when the result is still low, and warns while it runs when the descriptors in use
come near the limit.
"""

from __future__ import annotations

import asyncio
import logging
import os

__all__ = (
    "LOW_LIMIT",
    "NEAR_SHARE",
    "OpenFilesWatch",
    "open_files_in_use",
    "open_files_limit",
    "raise_open_files_limit",
)

logger = logging.getLogger("gateway.service")

#: Below this many descriptors, start-up says how many sessions that allows.
LOW_LIMIT = 4096
#: The share of the limit in use from which the watch warns.
NEAR_SHARE = 0.9
#: The most the soft limit is raised to (a hard limit of "unlimited" is not a target).
_CEILING = 1 << 20

try:
    import resource
except ImportError:  # not on Unix: nothing to raise or watch
    resource = None  # type: ignore[assignment]


def open_files_limit() -> int | None:
    """The soft limit on open descriptors, or None where there is none to read."""
    if resource is None:
        return None
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def raise_open_files_limit(ceiling: int = _CEILING) -> tuple[int, int] | None:
    """Raise the soft limit to the hard one (at most ``ceiling``): (before, after), or
    None when it was already there or cannot be changed."""
    if resource is None:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = ceiling if hard == resource.RLIM_INFINITY else min(int(hard), ceiling)
    if soft != resource.RLIM_INFINITY and soft >= target:
        return None
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return None
    return int(soft), target


def open_files_in_use() -> int | None:
    """Descriptors this process holds (Linux: /proc/self/fd), or None where unknown."""
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # the listing's own descriptor
    except OSError:
        return None


def announce_limit(raised: tuple[int, int] | None) -> None:
    """Log what start-up did to the limit, and warn when it is still low."""
    if raised is not None:
        logger.info("open files: soft limit raised from %d to %d", *raised)
    limit = open_files_limit()
    if limit is not None and limit < LOW_LIMIT:
        logger.warning(
            "open files limit is %d: about %d sessions at most (one descriptor each, 3-4 more "
            "per transfer); raise it (systemd LimitNOFILE=65536, ulimit -n 65536)",
            limit, max(limit - 64, 0),
        )


class OpenFilesWatch:
    """Every ``interval`` seconds, compare the descriptors in use with the limit; warn
    (at most every ``repeat`` seconds) from ``NEAR_SHARE`` of it on, since past it new
    clients are silently never greeted."""

    def __init__(self, interval: float = 5.0, repeat: float = 60.0) -> None:
        self.interval = interval
        self.repeat = repeat
        self._warned_at: float | None = None

    def check(self, now: float) -> bool:
        """Look once; True when it warned."""
        limit, used = open_files_limit(), open_files_in_use()
        if limit is None or used is None or used < limit * NEAR_SHARE:
            return False
        if self._warned_at is not None and now - self._warned_at < self.repeat:
            return False
        self._warned_at = now
        logger.warning(
            "open files: %d of %d in use; at the limit new clients are not greeted "
            "(raise LimitNOFILE / ulimit -n)", used, limit,
        )
        return True

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self.check(loop.time())
            await asyncio.sleep(self.interval)
