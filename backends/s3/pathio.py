"""S3PathIO: the storage contract on an S3 endpoint.

Paths are ``/bucket/key`` (see ``keys``).  A directory is a key prefix: it exists
when its marker object (``dir/``) or any key below it exists, and the root of the
served tree always exists.  Every endpoint failure leaves this module as a built-in
exception (see ``errors``) wrapped in ``PathIOError``.
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat as stat_module
from collections.abc import AsyncIterator, Awaitable, Mapping
from pathlib import PurePosixPath
from typing import Any, NamedTuple

from ..base import (
    AbstractAsyncLister,
    AbstractPathIO,
    AsyncLister,
    HandleMethods,
    PathIONursery,
    universal_exception,
    with_timeout,
)
from . import keys
from .client import MAX_PART_SIZE, S3Settings
from .errors import translated
from .keys import Location
from .listing import Entry, iter_buckets, iter_children, iter_pages, timestamp
from .reader import S3Reader
from .store import MAX_COPY_PART, ObjectInfo, S3Store, copy_ranges
from .writer import S3Writer

__all__ = ("S3Factory", "S3PathIO", "S3Stat")

#: Keys per DeleteObjects request (the S3 maximum).
_DELETE_BATCH = 1000


def _os_error(code: int, path: object, cls: type[OSError] = OSError) -> OSError:
    return cls(code, os.strerror(code), str(path))


async def _concurrently(*awaitables: Awaitable[Any]) -> list[Any]:
    """Await all at once; the first failure is raised once all have finished."""
    results = await asyncio.gather(*awaitables, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


class S3Stat(NamedTuple):
    """The subset of ``os.stat_result`` the protocol reads."""

    st_size: int
    st_mtime: float
    st_ctime: float
    st_nlink: int
    st_mode: int


def _file_stat(size: int, mtime: float) -> S3Stat:
    return S3Stat(size, mtime, mtime, 1, stat_module.S_IFREG | 0o644)


def _dir_stat(mtime: float = 0.0) -> S3Stat:
    return S3Stat(0, mtime, mtime, 2, stat_module.S_IFDIR | 0o755)


class S3Factory(PathIONursery):
    """The path-io factory of one S3 root; ``aclose()`` releases its client."""

    def __init__(self, store: S3Store) -> None:
        super().__init__(S3PathIO)
        self.state = store

    async def aclose(self) -> None:
        await self.state.aclose()


class S3PathIO(HandleMethods, AbstractPathIO[PurePosixPath]):
    """Files and directories in S3 buckets, addressed as ``/bucket/key``."""

    #: what monitoring calls this storage (metrics labels)
    backend_name = "s3"
    writer_type = S3Writer

    def __init__(self, timeout: float | None = None, connection: Any = None,
                 state: S3Store | None = None) -> None:
        super().__init__(timeout=timeout, connection=connection, state=state)
        self._store = S3Store(S3Settings.from_options()) if state is None else state
        # entries of the page being listed: the protocol stats each listed entry, and
        # the page already says what HeadObject would
        self._listed: dict[PurePosixPath, S3Stat] = {}

    @property
    def state(self) -> S3Store:
        return self._store

    def __repr__(self) -> str:
        return f"S3PathIO(timeout={self.timeout!r}, root={str(self._store.root)!r})"

    @classmethod
    def from_root(cls, url: str, options: Mapping[str, Any] | None = None
                  ) -> tuple[S3Factory, PurePosixPath]:
        """``s3://bucket/prefix`` → (factory sharing one client, ``/bucket/prefix``)."""
        bucket, prefix = keys.parse_url(url)
        root = keys.path_of(bucket, prefix)
        return S3Factory(S3Store(S3Settings.from_options(options), root)), root

    async def aclose(self) -> None:
        await self._store.aclose()

    # -- helpers -------------------------------------------------------------------------

    def _locate(self, path: PurePosixPath) -> tuple[Location, PurePosixPath]:
        location = keys.locate(path)
        return location, keys.path_of(location.bucket, location.key) if location.bucket else PurePosixPath("/")

    def _always_dir(self, path: PurePosixPath) -> bool:
        """The served root and what is above it exist whatever the bucket holds."""
        root = self._store.root
        return path == root or path in root.parents

    async def _head(self, location: Location, key: str, where: object) -> ObjectInfo | None:
        client = await self._store.client()
        try:
            with translated(where):
                response = await client.head_object(Bucket=location.bucket, Key=key)
        except FileNotFoundError:
            return None
        return ObjectInfo(
            int(response.get("ContentLength", 0)),
            response.get("ETag"),
            timestamp(response.get("LastModified")),
        )

    async def _file(self, location: Location, where: object) -> ObjectInfo | None:
        if not location.key:
            return None
        return await self._head(location, location.key, where)

    async def _dir(self, location: Location, where: object) -> tuple[bool, float]:
        """(exists, mtime) of a directory: its marker, else any key below it.

        Both questions go out at once: one round trip whatever the answer.
        """
        if not location.key:
            return True, 0.0
        marker, below = await _concurrently(
            self._head(location, location.marker, where), self._any_key(location, where)
        )
        if marker is not None:
            return True, marker.mtime
        return below, 0.0

    async def _any_key(self, location: Location, where: object) -> bool:
        client = await self._store.client()
        with translated(where):
            response = await client.list_objects_v2(
                Bucket=location.bucket, Prefix=location.prefix, MaxKeys=1
            )
        return bool(response.get("KeyCount") or response.get("Contents"))

    async def _is_dir(self, path: PurePosixPath) -> bool:
        location, path = self._locate(path)
        if self._always_dir(path) or not location.bucket:
            return True
        return (await self._dir(location, path))[0]

    async def _require_parent_dir(self, path: PurePosixPath) -> None:
        parent = path.parent
        if self._always_dir(parent):
            return
        if await self._is_dir(parent):
            return
        location, _ = self._locate(parent)
        if await self._file(location, parent) is not None:
            raise _os_error(errno.ENOTDIR, path, NotADirectoryError)
        raise _os_error(errno.ENOENT, path, FileNotFoundError)

    async def _has_children(self, location: Location, where: object) -> bool:
        """Whether a directory lists anything (markers and sub-prefixes count)."""
        pages = iter_children(await self._store.client(), location, page_size=2, where=str(where))
        try:
            async for entries in pages:
                if entries:
                    return True
            return False
        finally:
            await pages.aclose()

    # -- queries -------------------------------------------------------------------------

    @universal_exception
    @with_timeout
    async def exists(self, path: PurePosixPath) -> bool:
        location, path = self._locate(path)
        if self._always_dir(path) or not location.bucket:
            return True
        info, (is_dir, _) = await _concurrently(
            self._file(location, path), self._dir(location, path)
        )
        return info is not None or is_dir

    @universal_exception
    @with_timeout
    async def is_dir(self, path: PurePosixPath) -> bool:
        return await self._is_dir(path)

    @universal_exception
    @with_timeout
    async def is_file(self, path: PurePosixPath) -> bool:
        location, path = self._locate(path)
        if self._always_dir(path):
            return False
        return await self._file(location, path) is not None

    @universal_exception
    @with_timeout
    async def stat(self, path: PurePosixPath) -> S3Stat:
        location, path = self._locate(path)
        listed = self._listed.pop(path, None)
        if listed is not None:
            return listed
        if self._always_dir(path) or not location.bucket:
            return _dir_stat()
        info = await self._file(location, path)
        if info is not None:
            return _file_stat(info.size, info.mtime)
        exists, mtime = await self._dir(location, path)
        if exists:
            return _dir_stat(mtime)
        raise _os_error(errno.ENOENT, path, FileNotFoundError)

    @universal_exception
    def list(self, path: PurePosixPath) -> AbstractAsyncLister:
        return AsyncLister(self._iterate(path), timeout=self.timeout)

    async def _iterate(self, path: PurePosixPath) -> AsyncIterator[PurePosixPath]:
        location, path = self._locate(path)
        client = await self._store.client()
        if location.bucket:
            pages = iter_children(
                client, location, page_size=self._store.settings.list_page_size, where=str(path)
            )
        else:
            pages = iter_buckets(client, str(path))
        try:
            async for entries in pages:
                self._listed = {path / entry.name: self._entry_stat(entry) for entry in entries}
                for entry in entries:
                    yield path / entry.name
        finally:
            self._listed = {}
            await pages.aclose()

    @staticmethod
    def _entry_stat(entry: Entry) -> S3Stat:
        return _dir_stat(entry.mtime) if entry.is_dir else _file_stat(entry.size, entry.mtime)

    @universal_exception
    async def realpath(self, path: PurePosixPath) -> PurePosixPath:
        return self._locate(path)[1]

    # -- changes -------------------------------------------------------------------------

    @universal_exception
    @with_timeout
    async def mkdir(self, path: PurePosixPath, *, parents: bool = False,
                    exist_ok: bool = False) -> None:
        location, path = self._locate(path)
        if self._always_dir(path) or not location.key:
            if exist_ok:
                return
            raise _os_error(errno.EEXIST, path, FileExistsError)
        if await self._file(location, path) is not None:
            raise _os_error(errno.EEXIST, path, FileExistsError)
        if (await self._dir(location, path))[0]:
            if exist_ok:
                return
            raise _os_error(errno.EEXIST, path, FileExistsError)
        try:
            await self._require_parent_dir(path)
        except FileNotFoundError:
            if not parents:
                raise
            await self.mkdir(path.parent, parents=True, exist_ok=True)
        client = await self._store.client()
        with translated(path):
            await client.put_object(Bucket=location.bucket, Key=location.marker, Body=b"")

    @universal_exception
    @with_timeout
    async def rmdir(self, path: PurePosixPath) -> None:
        location, path = self._locate(path)
        if self._always_dir(path) or not location.key:
            raise _os_error(errno.EBUSY, path)
        exists, _ = await self._dir(location, path)
        if not exists:
            if await self._file(location, path) is not None:
                raise _os_error(errno.ENOTDIR, path, NotADirectoryError)
            raise _os_error(errno.ENOENT, path, FileNotFoundError)
        if await self._has_children(location, path):
            raise _os_error(errno.ENOTEMPTY, path)
        client = await self._store.client()
        with translated(path):
            await client.delete_object(Bucket=location.bucket, Key=location.marker)

    @universal_exception
    @with_timeout
    async def unlink(self, path: PurePosixPath) -> None:
        location, path = self._locate(path)
        if self._always_dir(path) or await self._file(location, path) is None:
            if await self._is_dir(path):
                raise _os_error(errno.EISDIR, path, IsADirectoryError)
            raise _os_error(errno.ENOENT, path, FileNotFoundError)
        client = await self._store.client()
        with translated(path):
            await client.delete_object(Bucket=location.bucket, Key=location.key)

    @universal_exception
    @with_timeout
    async def rename(self, source: PurePosixPath, destination: PurePosixPath) -> None:
        src, source = self._locate(source)
        dst, destination = self._locate(destination)
        for location, path in ((src, source), (dst, destination)):
            if self._always_dir(path) or not location.key:
                raise _os_error(errno.EBUSY, path)
        if source == destination:
            return
        info = await self._file(src, source)
        if info is not None:
            if await self._is_dir(destination):
                raise _os_error(errno.EISDIR, destination, IsADirectoryError)
            await self._require_parent_dir(destination)
            await self._copy_object(src, dst, info, source)
            client = await self._store.client()
            with translated(source):
                await client.delete_object(Bucket=src.bucket, Key=src.key)
            return
        if not (await self._dir(src, source))[0]:
            raise _os_error(errno.ENOENT, source, FileNotFoundError)
        if source in destination.parents:
            raise _os_error(errno.EINVAL, destination)
        if await self._file(dst, destination) is not None:
            raise _os_error(errno.ENOTDIR, destination, NotADirectoryError)
        if (await self._dir(dst, destination))[0] and await self._has_children(dst, destination):
            raise _os_error(errno.ENOTEMPTY, destination)
        await self._require_parent_dir(destination)
        await self._move_tree(src, dst, source)

    async def _copy_object(self, src: Location, dst: Location, info: ObjectInfo,
                           where: object) -> None:
        """Server-side copy; a multipart copy above what one CopyObject may copy."""
        client = await self._store.client()
        source = {"Bucket": src.bucket, "Key": src.key}
        if info.size <= MAX_COPY_PART:
            request: dict[str, Any] = {"Bucket": dst.bucket, "Key": dst.key, "CopySource": source}
            if info.etag:
                request["CopySourceIfMatch"] = info.etag
            with translated(where):
                await client.copy_object(**request)
            return
        await self._multipart_copy(client, source, dst, info, where)

    async def _multipart_copy(self, client: Any, source: dict[str, str], dst: Location,
                              info: ObjectInfo, where: object) -> None:
        with translated(where):
            upload = await client.create_multipart_upload(Bucket=dst.bucket, Key=dst.key)
        upload_id = upload["UploadId"]
        limit = asyncio.Semaphore(self._store.settings.copy_concurrency)

        async def copy(number: int, first: int, last: int) -> dict[str, Any]:
            request: dict[str, Any] = {
                "Bucket": dst.bucket, "Key": dst.key, "UploadId": upload_id,
                "PartNumber": number, "CopySource": source,
                "CopySourceRange": f"bytes={first}-{last}",
            }
            if info.etag:
                request["CopySourceIfMatch"] = info.etag
            async with limit:
                with translated(where):
                    response = await client.upload_part_copy(**request)
            return {"PartNumber": number, "ETag": response["CopyPartResult"]["ETag"]}

        async def abort() -> None:
            with translated(where):
                await client.abort_multipart_upload(
                    Bucket=dst.bucket, Key=dst.key, UploadId=upload_id
                )

        ranges = copy_ranges(info.size) if info.size > MAX_PART_SIZE else [(0, info.size - 1)]
        try:
            parts = await asyncio.gather(
                *(copy(number, first, last) for number, (first, last) in enumerate(ranges, 1))
            )
            with translated(where):
                await client.complete_multipart_upload(
                    Bucket=dst.bucket, Key=dst.key, UploadId=upload_id,
                    MultipartUpload={"Parts": list(parts)},
                )
        except BaseException:
            await asyncio.shield(self._store.spawn(abort()))
            raise

    async def _move_tree(self, src: Location, dst: Location, where: object) -> None:
        """Copy every key below ``src`` to ``dst``, then delete the originals.

        Copies first, deletes after: a failure half-way leaves duplicates, never a
        lost file.  Directory markers are deleted deepest first, after the files, so
        stores that keep real folders (SeaweedFS) drop them too.
        """
        client = await self._store.client()
        settings = self._store.settings
        limit = asyncio.Semaphore(settings.copy_concurrency)
        moved: list[str] = []
        folders = {src.marker}

        async def move(item: dict[str, Any]) -> None:
            key = item["Key"]
            target = Location(dst.bucket, dst.prefix + src.below(key))
            info = ObjectInfo(int(item.get("Size", 0)), item.get("ETag"), 0.0)
            async with limit:
                if key.endswith("/"):
                    with translated(where):
                        await client.put_object(Bucket=dst.bucket, Key=target.key, Body=b"")
                else:
                    await self._copy_object(Location(src.bucket, key), target, info, where)

        async for page in iter_pages(
            client, src.bucket, src.prefix, delimiter=None,
            page_size=settings.list_page_size, where=str(where),
        ):
            items = page.get("Contents") or ()
            await asyncio.gather(*(move(item) for item in items))
            for item in items:
                key = item["Key"]
                moved.append(key)
                # every folder between src and the key, for stores with real folders
                head = key.rstrip("/")
                while "/" in head and len(head) > len(src.key):
                    head = head.rsplit("/", 1)[0]
                    folders.add(head + "/")
        with translated(where):
            await client.put_object(Bucket=dst.bucket, Key=dst.marker, Body=b"")
        files = [key for key in moved if not key.endswith("/")]
        for start in range(0, len(files), _DELETE_BATCH):
            batch = files[start : start + _DELETE_BATCH]
            with translated(where):
                response = await client.delete_objects(
                    Bucket=src.bucket,
                    Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
                )
            errors = response.get("Errors") or ()
            if errors:
                first = errors[0]
                raise OSError(errno.EIO, f"S3 could not delete {first.get('Key')}: "
                              f"{first.get('Code')}", str(where))
        markers = folders | {key for key in moved if key.endswith("/")}
        for marker in sorted(markers, key=lambda key: (-key.count("/"), key)):
            if len(marker) > len(src.prefix) or marker == src.marker:
                with translated(where):
                    await client.delete_object(Bucket=src.bucket, Key=marker)

    # -- files -----------------------------------------------------------------------------

    async def _open(self, path: PurePosixPath, mode: str = "rb") -> S3Reader | S3Writer:
        chars = set(mode)
        kinds = chars & {"r", "w", "a"}
        if "b" not in chars or len(kinds) != 1 or chars - {"r", "w", "a", "b", "+"}:
            raise ValueError(f"unsupported mode {mode!r}; expected rb, wb, ab or r+b")
        kind = kinds.pop()
        location, path = self._locate(path)
        if self._always_dir(path) or not location.key:
            raise _os_error(errno.EISDIR, path, IsADirectoryError)
        # "wb" replaces whatever is there: only append and resume need the old object
        info = None if kind == "w" else await self._file(location, path)
        if kind == "r":
            if info is None:
                if await self._is_dir(path):
                    raise _os_error(errno.EISDIR, path, IsADirectoryError)
                raise _os_error(errno.ENOENT, path, FileNotFoundError)
            if "+" not in chars:
                client = await self._store.client()
                return S3Reader(client, location.bucket, location.key, size=info.size,
                                etag=info.etag, where=str(path))
        elif info is None:
            if await self._is_dir(path):
                raise _os_error(errno.EISDIR, path, IsADirectoryError)
            await self._require_parent_dir(path)
        writer_mode = {"r": "r+", "w": "w", "a": "a"}[kind]
        return S3Writer(self._store, location.bucket, location.key, mode=writer_mode,
                        base=info, where=str(path))

