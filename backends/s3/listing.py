"""ListObjectsV2, one page at a time.

Pages are fetched only when the consumer asks for more entries, so the first LIST
line leaves while later pages are still on the endpoint, and a directory of any
size never sits whole in memory.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from .errors import translated
from .keys import Location, child_name

__all__ = ("Entry", "iter_children", "iter_pages", "page_entries", "timestamp")


@dataclass(frozen=True, slots=True)
class Entry:
    """One child of a directory, as a page of ListObjectsV2 describes it."""

    name: str
    is_dir: bool
    size: int = 0
    mtime: float = 0.0
    etag: str | None = None


def timestamp(value: Any) -> float:
    """Seconds since the epoch from botocore's datetime (0 when absent)."""
    return value.timestamp() if value is not None else 0.0


async def iter_pages(
    client: Any,
    bucket: str,
    prefix: str,
    *,
    delimiter: str | None,
    page_size: int,
    where: str,
) -> AsyncGenerator[dict[str, Any], None]:
    """ListObjectsV2 responses, following continuation tokens lazily."""
    request: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": page_size}
    if delimiter:
        request["Delimiter"] = delimiter
    while True:
        with translated(where):
            page = await client.list_objects_v2(**request)
        yield page
        token = page.get("NextContinuationToken")
        if not page.get("IsTruncated") or not token:
            return
        request["ContinuationToken"] = token


async def iter_children(
    client: Any, directory: Location, *, page_size: int, where: str
) -> AsyncGenerator[list[Entry], None]:
    """The entries of ``directory`` page by page, in key order, marker hidden."""
    async for page in iter_pages(
        client, directory.bucket, directory.prefix, delimiter="/", page_size=page_size,
        where=where,
    ):
        yield page_entries(directory, page)


def page_entries(directory: Location, page: dict[str, Any]) -> list[Entry]:
    """The entries one ListObjectsV2 page (delimiter ``/``) gives of ``directory``, in
    key order; its own marker and unaddressable keys are left out."""
    found: list[tuple[str, Entry]] = []
    for common in page.get("CommonPrefixes") or ():
        name = child_name(directory, common["Prefix"])
        if name is not None:
            found.append((common["Prefix"], Entry(name, True)))
    for item in page.get("Contents") or ():
        key = item["Key"]
        name = child_name(directory, key)
        if name is None:
            continue  # the directory's own marker
        mtime = timestamp(item.get("LastModified"))
        if key.endswith("/"):
            # a marker listed as an object (some stores do for empty folders)
            found.append((key, Entry(name, True, 0, mtime)))
        else:
            found.append((key, Entry(name, False, int(item.get("Size", 0)), mtime, item.get("ETag"))))
    found.sort(key=lambda pair: pair[0])
    return [entry for _, entry in found]


async def iter_buckets(client: Any, where: str) -> AsyncGenerator[list[Entry], None]:
    """The buckets, as the entries of the path ``/``."""
    with translated(where):
        response = await client.list_buckets()
    yield [
        Entry(bucket["Name"], True, 0, timestamp(bucket.get("CreationDate")))
        for bucket in response.get("Buckets") or ()
    ]
