"""What the path-io and the writer of one S3 root both use.

:class:`S3Store` is shared by every S3PathIO of a root and handed to each writer it
opens; :class:`ObjectInfo` is what the path-io learns about an object and the writer
builds on; :func:`copy_ranges` splits a server-side copy into valid parts for both
(renaming a large object, keeping the old bytes in front of an append).  Kept apart
so that ``pathio`` imports ``writer`` and neither imports the other back.

Checksums: an object written in one PutObject carries its upload's checksums as user
metadata (``x-amz-meta-gateway-sha256``...), part of the object itself, so they can
never describe other bytes and a copy (rename) keeps them.  A multipart upload's
metadata is fixed by CreateMultipartUpload, before any byte is known, so its
checksums (and those computed later by reading an object) are remembered by this
process for the object's ETag, which changes whenever its content does.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from ..checksums import ChecksumMemo, clean_values
from .client import MAX_PART_SIZE, S3Settings, SharedClient, acquire_client, release_client
from .metacache import MetaCache

__all__ = (
    "CHECKSUMS",
    "MAX_COPY_PART",
    "ObjectInfo",
    "S3Store",
    "checksum_metadata",
    "copy_ranges",
    "metadata_checksums",
)

logger = logging.getLogger("backends.s3")

#: Largest range one UploadPartCopy may copy.
MAX_COPY_PART = MAX_PART_SIZE
#: Checksums known for objects by (endpoint, bucket, key, ETag), in this process.
CHECKSUMS = ChecksumMemo()
#: User metadata keys carrying checksums: ``gateway-<algorithm>``.
_METADATA_PREFIX = "gateway-"


def checksum_metadata(values: Mapping[str, str]) -> dict[str, str]:
    """User metadata for an object's checksums."""
    return {_METADATA_PREFIX + key: value for key, value in clean_values(values).items()}


def metadata_checksums(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """The checksums an object's user metadata carries (keys come back lowercased)."""
    if not metadata:
        return {}
    prefix = _METADATA_PREFIX
    return clean_values({
        key.lower()[len(prefix):]: value
        for key, value in metadata.items() if key.lower().startswith(prefix)
    })


@dataclass(frozen=True)
class ObjectInfo:
    """What HeadObject says about an existing object."""

    size: int
    etag: str | None
    mtime: float
    #: the object's user metadata, when HeadObject gave it
    metadata: Mapping[str, str] | None = None


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

    def _checksum_id(self, bucket: str, key: str, etag: str) -> tuple[str | None, str, str, str]:
        # endpoints quote ETags in some answers and not in others (CopyObjectResult)
        return (self.settings.endpoint_url, bucket, key, etag.strip().strip('"'))

    def remembered(self, bucket: str, key: str, etag: str | None) -> dict[str, str]:
        """Checksums this process knows for the object's current content."""
        return CHECKSUMS.get(self._checksum_id(bucket, key, etag)) if etag else {}

    def remember(self, bucket: str, key: str, etag: str | None, values: Mapping[str, str]) -> None:
        if etag:
            CHECKSUMS.add(self._checksum_id(bucket, key, etag), values)

    def copied(self, source: tuple[str, str, str | None], target: tuple[str, str, str | None]) -> None:
        """An object was copied (renamed): what is known of its content goes along."""
        (bucket, key, etag), (new_bucket, new_key, new_etag) = source, target
        if etag and new_etag:
            CHECKSUMS.move(self._checksum_id(bucket, key, etag),
                           self._checksum_id(new_bucket, new_key, new_etag))

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
