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
from dataclasses import replace
from pathlib import PurePosixPath
from typing import Any, NamedTuple, cast

from ..base import (
    AbstractAsyncLister,
    AbstractPathIO,
    AsyncLister,
    HandleMethods,
    PathIONursery,
    check_handle,
    moves_bytes_as,
    universal_exception,
    with_timeout,
)
from ..checksums import Stored
from . import keys
from .client import MAX_PART_SIZE, S3Settings
from .errors import translated
from .keys import Location
from .listing import Entry, iter_buckets, iter_children, iter_pages, page_entries, timestamp
from .metacache import UNKNOWN, Known, MetaCache
from .reader import S3Reader
from .store import MAX_COPY_PART, ObjectInfo, S3Store, copy_ranges, metadata_checksums
from .writer import S3Writer

__all__ = ("S3Factory", "S3PathIO", "S3Stat")

#: Keys per DeleteObjects request (the S3 maximum).
_DELETE_BATCH = 1000
#: Keys a name probe asks for: enough to get past the siblings whose names extend
#: the probed one (``name.1``, ``name-2``) in nearly every directory.
_PROBE_KEYS = 100


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


_DIR = Known(True, None)
#: The served root and what is above it.
_ALWAYS = Known(True, _dir_stat())


def _children(entries: list[Entry]) -> dict[str, Known]:
    """Listed entries by name; a file and a directory of one name make one entry."""
    children: dict[str, Known] = {}
    for entry in entries:
        if entry.is_dir:
            known = Known(True, _dir_stat(entry.mtime))
        else:
            known = Known(False, _file_stat(entry.size, entry.mtime), entry.etag, entry.size)
        previous = children.get(entry.name)
        if previous is not None and previous.is_dir != known.is_dir:
            known = replace(known if not known.is_dir else previous, also_dir=True)
        elif previous is not None:
            continue
        children[entry.name] = known
    return children


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
    exclusive_create = True
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

    # -- what a name is ------------------------------------------------------------------

    @property
    def _cache(self) -> MetaCache:
        return self._store.metadata

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
            response.get("Metadata"),
        )

    async def _known(self, path: PurePosixPath, *, recheck_missing: bool = False) -> Known | None:
        """What ``path`` is (None: nothing): from what was learned a moment ago, else
        from one listing of its directory (which answers for its siblings too), else
        from one probe of the name where the directory is too big for one page.

        ``recheck_missing``: a name remembered as missing is asked again, where the
        answer would be a 550 (a directory made by another program a moment ago can
        be entered at once); writers trust it, as it only says a name is free.
        """
        location, path = self._locate(path)
        if self._always_dir(path) or not location.key:
            return _ALWAYS
        cache = self._cache
        known = cache.get(path)
        if known is not UNKNOWN and (known is not None or not recheck_missing):
            return known
        if known is None:
            return await self._probe(location, path)
        if not cache.is_big(path.parent):
            exists, children = await self._snapshot(path.parent)
            if not exists:
                return None
            if children is not None:
                return children.get(path.name)
            known = cache.get(path)
            if known is not UNKNOWN:
                return known
        return await self._probe(location, path)

    async def _probe(self, location: Location, path: PurePosixPath) -> Known | None:
        """One ListObjectsV2 (the key as prefix, ``/`` as delimiter) tells at once
        whether the key is a file (with its size, date and ETag), a directory (the
        common prefix ``key/``), both, or nothing."""
        client = await self._store.client()
        key = location.key
        as_dir = key + "/"
        with translated(path):
            page = await client.list_objects_v2(
                Bucket=location.bucket, Prefix=key, Delimiter="/", MaxKeys=_PROBE_KEYS
            )
        file: Known | None = None
        is_dir = False
        beyond = False  # the page got past where ``key/`` sorts
        for item in page.get("Contents") or ():
            listed = item["Key"]
            if listed == key:
                size, mtime = int(item.get("Size", 0)), timestamp(item.get("LastModified"))
                file = Known(False, _file_stat(size, mtime), item.get("ETag"), size)
            elif listed.startswith(as_dir):
                is_dir = True  # a store listing a marker as an object
            beyond = beyond or listed >= as_dir
        for common in page.get("CommonPrefixes") or ():
            prefix = common["Prefix"]
            is_dir = is_dir or prefix == as_dir
            beyond = beyond or prefix >= as_dir
        if not is_dir and not beyond and page.get("IsTruncated"):
            # more than a page of names extend this one (``name.1``, ``name-2``...)
            is_dir = await self._any_key(location, path)
        if page.get("Contents") or page.get("CommonPrefixes"):
            self._cache.put(path.parent, _DIR)  # whatever was listed lives there
        known: Known | None
        if file is not None:
            known = replace(file, also_dir=True) if is_dir else file
        else:
            known = _DIR if is_dir else None
        self._cache.put(path, known)
        return known

    async def _any_key(self, location: Location, where: object) -> bool:
        client = await self._store.client()
        with translated(where):
            response = await client.list_objects_v2(
                Bucket=location.bucket, Prefix=location.prefix, MaxKeys=1
            )
        return bool(response.get("KeyCount") or response.get("Contents"))

    async def _snapshot(self, directory: PurePosixPath) -> tuple[bool, dict[str, Known] | None]:
        """List ``directory``: (whether it exists, its children when they fit in one
        page, else None).  Remembered, so the next questions about names there, and
        the next writes there, ask nothing."""
        location, directory = self._locate(directory)
        client = await self._store.client()
        with translated(directory):
            page = await client.list_objects_v2(
                Bucket=location.bucket, Prefix=location.prefix, Delimiter="/",
                MaxKeys=self._store.settings.list_page_size,
            )
        if not (page.get("Contents") or page.get("CommonPrefixes")) and not (
            self._always_dir(directory) or not location.key
        ):
            return False, None
        children = _children(page_entries(location, page))
        if page.get("IsTruncated"):
            self._cache.mark_big(directory)
            self._cache.put(directory, _DIR)
            self._cache.put_listed(directory, children.items())
            return True, None
        self._cache.put_snapshot(directory, children)
        return True, children

    async def _not_a_dir(self, directory: PurePosixPath, where: PurePosixPath | None = None
                         ) -> OSError:
        """The error for a directory that turned out not to exist (about ``where``)."""
        location, directory = self._locate(directory)
        where = directory if where is None else where
        known = await self._probe(location, directory)
        if known is not None and not known.holds_dir:
            return _os_error(errno.ENOTDIR, where, NotADirectoryError)
        return _os_error(errno.ENOENT, where, FileNotFoundError)

    async def _for_write(self, path: PurePosixPath) -> Known | None:
        """What ``path`` is, once its parent is known to be a directory.

        One listing of the parent answers both questions and is remembered, so a run
        of uploads into one directory asks S3 nothing before each PutObject; in a
        directory too big for one page, the name alone is probed.

        :raises FileNotFoundError, NotADirectoryError: the parent is no directory
        """
        location, path = self._locate(path)
        parent = path.parent
        cache = self._cache
        known = cache.get(path)
        parent_ok = self._always_dir(parent) or cache.is_dir(parent)
        if known is not UNKNOWN and parent_ok:
            return known
        if not cache.is_big(parent):
            exists, children = await self._snapshot(parent)
            if not exists:
                raise await self._not_a_dir(parent, path)
            if children is not None:
                return children.get(path.name)
            known = cache.get(path)
            if known is not UNKNOWN:
                return known
            parent_ok = True
        if parent_ok:
            return await self._probe(location, path)
        known, _ = await _concurrently(self._probe(location, path), self._require_parent_dir(path))
        return known

    async def _require_parent_dir(self, path: PurePosixPath) -> None:
        parent = path.parent
        if self._always_dir(parent):
            return
        known = await self._known(parent)
        if known is None:
            raise _os_error(errno.ENOENT, path, FileNotFoundError)
        if not known.holds_dir:
            raise _os_error(errno.ENOTDIR, path, NotADirectoryError)

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
        return await self._known(path) is not None

    @universal_exception
    @with_timeout
    async def is_dir(self, path: PurePosixPath) -> bool:
        known = await self._known(path)
        return known is not None and known.holds_dir

    @universal_exception
    @with_timeout
    async def is_file(self, path: PurePosixPath) -> bool:
        known = await self._known(path)
        return known is not None and not known.is_dir

    @universal_exception
    @with_timeout
    async def stat(self, path: PurePosixPath) -> S3Stat:
        location, path = self._locate(path)
        listed = self._listed.pop(path, None)
        if listed is not None:
            return listed
        known = await self._known(path, recheck_missing=True)
        if known is None:
            raise _os_error(errno.ENOENT, path, FileNotFoundError)
        if known.stat is not None:
            return cast(S3Stat, known.stat)
        if known.is_dir:
            return _dir_stat()
        # one of our own uploads: its date is the endpoint's to say
        info = await self._head(location, location.key, path)
        if info is None:
            self._cache.put(path, None)
            raise _os_error(errno.ENOENT, path, FileNotFoundError)
        known = Known(False, _file_stat(info.size, info.mtime), info.etag, info.size, known.also_dir)
        self._cache.put(path, known)
        return cast(S3Stat, known.stat)

    @universal_exception
    def list(self, path: PurePosixPath) -> AbstractAsyncLister:
        return AsyncLister(self._iterate(path), timeout=self.timeout)

    async def _iterate(self, path: PurePosixPath) -> AsyncIterator[PurePosixPath]:
        location, path = self._locate(path)
        client = await self._store.client()
        if not location.bucket:
            pages = iter_buckets(client, str(path))
            try:
                async for entries in pages:
                    self._listed = {path / entry.name: self._entry_stat(entry) for entry in entries}
                    for entry in entries:
                        yield path / entry.name
            finally:
                self._listed = {}
                await pages.aclose()
            return
        listing = iter_pages(
            client, location.bucket, location.prefix, delimiter="/",
            page_size=self._store.settings.list_page_size, where=str(path),
        )
        first = True
        try:
            async for page in listing:
                entries = page_entries(location, page)
                children = _children(entries)
                if first and not page.get("IsTruncated") and (
                    page.get("Contents") or page.get("CommonPrefixes")
                    or self._always_dir(path) or not location.key
                ):
                    self._cache.put_snapshot(path, children)
                else:
                    self._cache.put_listed(path, children.items())
                first = False
                self._listed = {path / entry.name: self._entry_stat(entry) for entry in entries}
                for entry in entries:
                    yield path / entry.name
        finally:
            self._listed = {}
            await listing.aclose()

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
        try:
            known = await self._for_write(path)
        except FileNotFoundError:
            if not parents:
                raise
            await self.mkdir(path.parent, parents=True, exist_ok=True)
            known = None
        if known is not None:
            if exist_ok and known.holds_dir:
                return
            raise _os_error(errno.EEXIST, path, FileExistsError)
        client = await self._store.client()
        with translated(path):
            await client.put_object(Bucket=location.bucket, Key=location.marker, Body=b"")
        self._cache.made_dir(path)

    @universal_exception
    @with_timeout
    async def rmdir(self, path: PurePosixPath) -> None:
        location, path = self._locate(path)
        if self._always_dir(path) or not location.key:
            raise _os_error(errno.EBUSY, path)
        # one listing says whether the directory exists and whether it is empty
        client = await self._store.client()
        with translated(path):
            page = await client.list_objects_v2(
                Bucket=location.bucket, Prefix=location.prefix, MaxKeys=2
            )
        below = [item["Key"] for item in page.get("Contents") or ()]
        if not below:
            raise await self._not_a_dir(path)
        if any(key != location.marker for key in below):
            raise _os_error(errno.ENOTEMPTY, path)
        with translated(path):
            await client.delete_object(Bucket=location.bucket, Key=location.marker)
        self._cache.forget_tree(path)
        self._cache.removed(path)

    @universal_exception
    @with_timeout
    async def unlink(self, path: PurePosixPath) -> None:
        location, path = self._locate(path)
        if self._always_dir(path) or not location.key:
            raise _os_error(errno.EISDIR, path, IsADirectoryError)
        known = self._cache.get(path)
        if not (isinstance(known, Known) and not known.is_dir):
            # S3 deletes a missing key without a word: look first, to answer 550
            if await self._head(location, location.key, path) is None:
                known = await self._probe(location, path)
                if known is not None and known.is_dir:
                    raise _os_error(errno.EISDIR, path, IsADirectoryError)
                raise _os_error(errno.ENOENT, path, FileNotFoundError)
        client = await self._store.client()
        with translated(path):
            await client.delete_object(Bucket=location.bucket, Key=location.key)
        self._forget_file(path, known)

    def _forget_file(self, path: PurePosixPath, known: Any) -> None:
        if isinstance(known, Known) and known.also_dir:
            self._cache.put(path, _DIR)  # the directory of that name stays
        else:
            self._cache.removed(path)

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
        known = await self._known(source)
        if known is None:
            raise _os_error(errno.ENOENT, source, FileNotFoundError)
        if not known.is_dir:
            target = await self._for_write(destination)
            if target is not None and target.holds_dir:
                raise _os_error(errno.EISDIR, destination, IsADirectoryError)
            if known.size is None or known.size > MAX_COPY_PART:
                # a multipart copy pins the object's version: ask for it now
                info = await self._head(src, src.key, source)
                if info is None:
                    self._cache.put(source, None)
                    raise _os_error(errno.ENOENT, source, FileNotFoundError)
            else:
                info = ObjectInfo(known.size, None, 0.0)
            try:
                copied = await self._copy_object(src, dst, info, source)
            except FileNotFoundError:
                self._cache.put(source, None)  # removed by another writer meanwhile
                raise
            self._store.copied((src.bucket, src.key, info.etag or known.etag),
                               (dst.bucket, dst.key, copied))
            client = await self._store.client()
            with translated(source):
                await client.delete_object(Bucket=src.bucket, Key=src.key)
            self._forget_file(source, known)
            self._cache.wrote(destination, info.size)
            return
        if source in destination.parents:
            raise _os_error(errno.EINVAL, destination)
        target = await self._for_write(destination)
        if target is not None:
            if not target.holds_dir:
                raise _os_error(errno.ENOTDIR, destination, NotADirectoryError)
            if await self._has_children(dst, destination):
                raise _os_error(errno.ENOTEMPTY, destination)
        try:
            await self._move_tree(src, dst, source)
        finally:
            self._cache.forget_tree(source)
            self._cache.forget_tree(destination)
        self._cache.removed(source)
        self._cache.made_dir(destination, empty=False)

    async def _copy_object(self, src: Location, dst: Location, info: ObjectInfo,
                           where: object) -> str | None:
        """Server-side copy (user metadata, and so checksums, included); a multipart
        copy above what one CopyObject may copy.  The copy's ETag."""
        client = await self._store.client()
        source = {"Bucket": src.bucket, "Key": src.key}
        if info.size <= MAX_COPY_PART:
            request: dict[str, Any] = {"Bucket": dst.bucket, "Key": dst.key, "CopySource": source}
            if info.etag:
                request["CopySourceIfMatch"] = info.etag
            with translated(where):
                response = await client.copy_object(**request)
            etag: str | None = (response.get("CopyObjectResult") or {}).get("ETag")
            return etag
        return await self._multipart_copy(client, source, dst, info, where)

    async def _multipart_copy(self, client: Any, source: dict[str, str], dst: Location,
                              info: ObjectInfo, where: object) -> str | None:
        create: dict[str, Any] = {"Bucket": dst.bucket, "Key": dst.key}
        if info.metadata:
            create["Metadata"] = dict(info.metadata)  # what a CopyObject would carry
        with translated(where):
            upload = await client.create_multipart_upload(**create)
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
                response = await client.complete_multipart_upload(
                    Bucket=dst.bucket, Key=dst.key, UploadId=upload_id,
                    MultipartUpload={"Parts": list(parts)},
                )
        except BaseException:
            await asyncio.shield(self._store.spawn(abort()))
            raise
        etag: str | None = response.get("ETag")
        return etag

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
                    if info.size > MAX_COPY_PART:
                        # a multipart copy carries the user metadata only when told it
                        head = await self._head(Location(src.bucket, key), key, where)
                        if head is not None:
                            info = head
                    copied = await self._copy_object(Location(src.bucket, key), target, info, where)
                    self._store.copied((src.bucket, key, info.etag), (dst.bucket, target.key, copied))

        async for page in iter_pages(
            client, src.bucket, src.prefix, delimiter=None,
            page_size=settings.list_page_size, where=str(where),
        ):
            items = page.get("Contents") or ()
            # markers before the files below them: a store with real folders
            # (SeaweedFS) keeps a folder made by its marker when its last file goes,
            # but drops one that only the copy of a file below it made
            await asyncio.gather(*(move(item) for item in items if item["Key"].endswith("/")))
            await asyncio.gather(*(move(item) for item in items if not item["Key"].endswith("/")))
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

    # -- checksums ---------------------------------------------------------------------------

    @universal_exception
    @with_timeout
    async def stored_checksums(self, path: PurePosixPath) -> Stored | None:
        """One HeadObject: the checksums in the object's metadata, or those this process
        remembers for its ETag (see ``store``)."""
        if not moves_bytes_as(self, S3PathIO):
            return None
        location, path = self._locate(path)
        if self._always_dir(path) or not location.key:
            raise _os_error(errno.EISDIR, path, IsADirectoryError)
        info = await self._head(location, location.key, path)
        if info is None:
            known = await self._probe(location, path)
            if known is not None and known.is_dir:
                raise _os_error(errno.EISDIR, path, IsADirectoryError)
            raise _os_error(errno.ENOENT, path, FileNotFoundError)
        values = {
            **self._store.remembered(location.bucket, location.key, info.etag),
            **metadata_checksums(info.metadata),
        }
        return Stored(info.size, values)

    @universal_exception
    async def keep_checksums(self, file: Any, values: Mapping[str, str]) -> None:
        check_handle(file)
        if not moves_bytes_as(self, S3PathIO):
            return
        if isinstance(file, S3Writer):
            if file.mode == "w":
                file.checksums = dict(values)
        elif isinstance(file, S3Reader) and file.position >= file.size:
            # the reader pinned the ETag it read: the values are those bytes'
            self._store.remember(file.bucket, file.key, file.etag, values)

    # -- files -----------------------------------------------------------------------------

    async def _open(self, path: PurePosixPath, mode: str = "rb") -> S3Reader | S3Writer:
        chars = set(mode)
        kinds = chars & {"r", "w", "a", "x"}
        if "b" not in chars or len(kinds) != 1 or chars - {"r", "w", "a", "x", "b", "+"}:
            raise ValueError(f"unsupported mode {mode!r}; expected rb, wb, xb, ab or r+b")
        kind = kinds.pop()
        exclusive = kind == "x"
        if exclusive:
            kind = "w"
        location, path = self._locate(path)
        if self._always_dir(path) or not location.key:
            raise _os_error(errno.EISDIR, path, IsADirectoryError)
        if kind == "r" and "+" not in chars:
            # the GetObject itself says "no such key": nothing is asked before it
            client = await self._store.client()
            try:
                return await S3Reader.open(client, location.bucket, location.key, where=str(path))
            except FileNotFoundError:
                known = await self._probe(location, path)
                if known is not None and known.is_dir:
                    raise _os_error(errno.EISDIR, path, IsADirectoryError) from None
                raise
        # "wb" replaces whatever is there: only append and resume need the old object
        info = None if kind == "w" else await self._head(location, location.key, path)
        if info is None:
            known = await self._for_write(path)
            if known is not None and known.holds_dir:
                raise _os_error(errno.EISDIR, path, IsADirectoryError)
        writer_mode = {"r": "r+", "w": "w", "a": "a"}[kind]
        return S3Writer(self._store, location.bucket, location.key, mode=writer_mode,
                        base=info, where=str(path), exclusive=exclusive)
