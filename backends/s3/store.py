"""What the path-io and the writer of one S3 root both use.

:class:`S3Store` is shared by every S3PathIO of a root and handed to each writer it
opens; :class:`ObjectInfo` is what the path-io learns about an object and the writer
builds on; :func:`copy_ranges` splits a server-side copy into valid parts for both
(renaming a large object, keeping the old bytes in front of an append).  Kept apart
so that ``pathio`` imports ``writer`` and neither imports the other back.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from .client import MAX_PART_SIZE, S3Settings, SharedClient, acquire_client, release_client
from .metacache import MetaCache

__all__ = ("MAX_COPY_PART", "ObjectInfo", "S3Store", "copy_ranges")

logger = logging.getLogger("backends.s3")

#: Largest range one UploadPartCopy may copy.
MAX_COPY_PART = MAX_PART_SIZE


@dataclass(frozen=True)
class ObjectInfo:
    """What HeadObject says about an existing object."""

    size: int
    etag: str | None
    mtime: float


def copy_ranges(size: int) -> list[tuple[int, int]]:
    """Inclusive byte ranges covering ``size`` bytes, each a valid UploadPartCopy part."""
    count = -(-size // MAX_COPY_PART)
    step = -(-size // count)
    return [(start, min(start + step, size) - 1) for start in range(0, size, step)]


class S3Store:
    """What every S3PathIO of one root shares: settings, the client, cleanup tasks."""

    def __init__(self, settings: S3Settings, root: PurePosixPath = PurePosixPath("/")) -> None:
        self.settings = settings
        self.root = root
        self._shared: SharedClient | None = acquire_client(settings)
        #: names learned by every root on this client (see ``metacache``)
        self.metadata: MetaCache = self._shared.metadata
        self._background: set[asyncio.Task[Any]] = set()

    async def client(self) -> Any:
        if self._shared is None:
            raise ConnectionError(errno.ESHUTDOWN, "the S3 backend is closed")
        return await self._shared.get()

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run work that must finish even if its caller is cancelled (aborting uploads)."""
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def aclose(self) -> None:
        """Let pending cleanups finish, then give the shared client back."""
        if self._background:
            _, pending = await asyncio.wait(list(self._background), timeout=30)
            for task in pending:  # an upload abort still waiting for the endpoint
                task.cancel()
            if pending:
                logger.warning("S3 backend closed with %d cleanups unfinished", len(pending))
                await asyncio.wait(pending)
        shared, self._shared = self._shared, None
        if shared is not None:
            await release_client(shared)
