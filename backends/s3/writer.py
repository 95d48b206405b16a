"""Writing an object: a multipart upload fed part by part as bytes arrive.

Memory is bounded by ``part_size x parts_in_flight`` whatever the file's size: the
buffer being filled takes one of ``parts_in_flight`` slots, each part being uploaded
keeps its slot until the endpoint has it, and a write waits for a free slot, which
slows the sender down (TCP backpressure on the FTP data connection).  A file smaller
than one part goes in a single PutObject at commit.  Every part and object carries a
checksum (CRC32 by default, or Content-MD5) that the endpoint verifies.

Nothing is visible before commit (CompleteMultipartUpload / PutObject).  Abort,
cancellation or any failure aborts the multipart upload, in a background task the
caller's cancellation cannot interrupt, so no parts are left behind.

Appending ("ab", and "r+b" at an offset) keeps the old bytes in front: copied on the
server side (UploadPartCopy) when there are at least 5 MiB of them, carried in the
first part otherwise.

A new object's checksums, handed over before commit (``checksums``), go into its
PutObject as user metadata, or are remembered for the ETag CompleteMultipartUpload
returns (see ``store``), with what the parts' own checksums give for free: the
object's CRC-32, combined from theirs (or the MD5 of a single part sent with
Content-MD5).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import hashlib
import io
import logging
import sys
import time
import zlib
from collections.abc import Iterator
from typing import Any

from ..checksums import crc32_combine
from ..partbody import PartBody, PartBuffer, send_while_moving
from ..paths import seek_target
from .client import MAX_PART_SIZE, MIN_PART_SIZE
from .errors import REQUEST_ERRORS, ObjectChanged, UnsupportedWrite, translated
from .keys import path_of
from .store import ObjectInfo, S3Store, checksum_metadata, copy_ranges

__all__ = ("WRITE_BUFFERS", "BufferGauge", "S3Writer", "part_size_for")

logger = logging.getLogger("backends.s3")

#: Tries to abort an upload while the endpoint is unreachable (about 5 minutes).
_ABORT_ATTEMPTS = 14
#: How far before our CreateMultipartUpload (clock skew included) an upload of the same
#: key may have started and still be taken for ours when that request's answer was lost.
_STRAY_WINDOW = 120.0
#: Multipart uploads this process has open (never taken for strays).
_LIVE_UPLOADS: set[str] = set()
#: S3 accepts at most this many parts in one upload.
MAX_PARTS = 10_000
#: Parts per size tier: after each tier the part size doubles, so a stream of unknown
#: length fits in 10,000 parts (8 MiB parts: 16 GB at constant memory, ~500 GB in all).
PARTS_PER_TIER = 2_000
#: Below this, checksums are computed inline; above, in a thread (zlib and hashlib
#: release the GIL), so a part's checksum does not stall the event loop.
_THREAD_CHECKSUM = 256 * 1024


class BufferGauge:
    """Bytes held by upload buffers in this process, for tests and monitoring.

    ``writer_peak`` is the most any single upload held at once: the figure bounded
    by ``part_size x parts_in_flight``.
    """

    def __init__(self) -> None:
        self.current = 0
        self.peak = 0
        self.writer_peak = 0

    def reset(self) -> None:
        self.peak = self.current
        self.writer_peak = 0

    def _change(self, delta: int, writer_held: int) -> None:
        self.current += delta
        self.peak = max(self.peak, self.current)
        self.writer_peak = max(self.writer_peak, writer_held)


WRITE_BUFFERS = BufferGauge()


def part_size_for(number: int, base: int) -> int:
    """The size of part ``number`` (1-based): ``base``, doubled every PARTS_PER_TIER parts."""
    tier = (number - 1) // PARTS_PER_TIER
    return min(base << tier, MAX_PART_SIZE)


class S3Writer:
    """An open object for writing; ``mode`` is "w", "a" or "r+"."""

    def __init__(self, store: S3Store, bucket: str, key: str, *, mode: str,
                 base: ObjectInfo | None, where: str, exclusive: bool = False) -> None:
        settings = store.settings
        self.store = store
        #: the object is made only if its key is free when it is committed
        #: (If-None-Match: * on PutObject / CompleteMultipartUpload)
        self.exclusive = exclusive
        self.bucket = bucket
        self.key = key
        self.mode = mode
        self.base = base
        self.where = where
        self.part_size = settings.part_size
        self.crc32 = settings.checksum_algorithm.upper() == "CRC32"
        self.stall_timeout = settings.read_timeout
        #: Old bytes kept in front of the new ones.
        self.start = base.size if (mode == "a" and base is not None) else 0
        self.written = 0
        self.held = 0
        self.peak_held = 0
        self._state = "open"
        self._started = False
        self._slots = asyncio.Semaphore(settings.parts_in_flight)
        self._holding_slot = False
        # the part being filled: bytes are copied in once, from the caller's buffer
        # (which the caller may reuse), and the buffer itself becomes the request body
        self._buffer: PartBuffer | None = None
        self._buffered = 0
        self._next_part = 1
        self._parts: dict[int, dict[str, Any]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._create_task: asyncio.Task[str] | None = None
        self._create_started = 0.0
        self._create_uncertain = False
        self._failure: BaseException | None = None
        #: checksums of every byte of a new object ("w"), kept with it at commit
        self.checksums: dict[str, str] = {}
        #: the committed object's ETag, as the endpoint answered it
        self.etag: str | None = None
        #: each part's CRC-32 and length (part number -> ...), or the one part's MD5
        self._part_crcs: dict[int, tuple[int, int]] = {}
        self._part_md5 = ""

    # -- accounting ---------------------------------------------------------------------

    def _hold(self, count: int) -> None:
        self.held += count
        self.peak_held = max(self.peak_held, self.held)
        WRITE_BUFFERS._change(count, self.held)

    def _unhold(self, count: int) -> None:
        self.held -= count
        WRITE_BUFFERS._change(-count, self.held)

    def _part_buffer(self) -> PartBuffer:
        if self._buffer is None:
            self._buffer = PartBuffer(part_size_for(self._next_part, self.part_size))
        return self._buffer

    def _drop_buffer(self) -> None:
        self._buffer = None
        if self._buffered:
            self._unhold(self._buffered)
            self._buffered = 0
        if self._holding_slot:
            self._holding_slot = False
            self._slots.release()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    # -- the file interface ----------------------------------------------------------------

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        end = self.start + self.written
        size = self.base.size if (self.base is not None and not self._started) else end
        offset = seek_target(offset, whence, end, size)
        if offset == end:
            return offset
        if self.mode == "a":
            return offset  # appends always go to the end, as with O_APPEND
        if self._started or self.written:
            raise UnsupportedWrite("S3 objects are written front to back: no seeking back", self.where)
        if self.mode == "r+" and self.base is not None and 0 <= offset <= self.base.size:
            self.start = offset
            return offset
        raise UnsupportedWrite(
            f"S3 cannot write at offset {offset}: an object is rewritten from its start and "
            "can only be continued at its end",
            self.where,
        )

    async def write(self, data: bytes) -> None:
        if self._state != "open":
            raise ValueError("write to a closed S3 object")
        self._raise_failure()
        if not data:
            return
        if not self._started:
            await self._start()
        view = memoryview(data).cast("B")
        while view:
            if not self._holding_slot:
                await self._slots.acquire()  # backpressure: wait for a part to finish
                self._holding_slot = True
            self._raise_failure()
            room = part_size_for(self._next_part, self.part_size) - self._buffered
            piece, view = view[:room], view[room:]
            self._part_buffer().append(piece)
            self._buffered += len(piece)
            self._hold(len(piece))
            self.written += len(piece)
            if self._buffered >= part_size_for(self._next_part, self.part_size):
                await self._send_buffer()

    async def commit(self) -> None:
        if self._state != "open":
            return
        self._state = "committing"
        try:
            self._raise_failure()
            if self.mode != "w" and self.base is not None and not self.written:
                self._state = "committed"  # nothing written: the object stays as it was
                return
            if (
                self.mode == "r+"
                and self.base is not None
                and self.start + self.written < self.base.size
            ):
                raise UnsupportedWrite(
                    f"S3 cannot keep the old bytes after {self.start + self.written} "
                    f"(the object has {self.base.size}): resume writes must reach its end",
                    self.where,
                )
            if not self._started:
                await self._start()
            if self._create_task is None:
                await self._put_single(self._part_buffer())
            else:
                if self._buffered:
                    await self._send_buffer()
                if self._tasks:
                    await asyncio.gather(*list(self._tasks))
                self._raise_failure()
                await self._complete_shielded()
            self._state = "committed"
            # a fresh object ("w", or a new one): its size is known; after an append
            # or a resume only that it exists
            size = self.start + self.written if self.mode == "w" or self.base is None else None
            self.store.metadata.wrote(path_of(self.bucket, self.key), size, self.etag)
        except BaseException:
            await self.abort()
            raise
        finally:
            self._drop_buffer()

    async def abort(self) -> None:
        if self._state in ("aborted", "committed"):
            return
        self._state = "aborted"
        self._drop_buffer()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if self._create_task is None and not tasks:
            return
        cleanup = self.store.spawn(self._cleanup(tasks))
        await asyncio.shield(cleanup)

    # -- the upload --------------------------------------------------------------------------

    async def _start(self) -> None:
        """Put the kept old bytes in front: copied on the server, or carried in part 1."""
        self._started = True
        kept = self.start
        if not kept:
            return
        assert self.base is not None
        if kept >= MIN_PART_SIZE:
            await self._ensure_upload()
            for first, last in copy_ranges(kept):
                number = self._next_part
                self._next_part += 1
                self._spawn(self._copy_part(number, first, last))
            return
        await self._slots.acquire()
        self._holding_slot = True
        client = await self.store.client()
        request: dict[str, Any] = {
            "Bucket": self.bucket, "Key": self.key, "Range": f"bytes=0-{kept - 1}",
        }
        if self.base.etag:
            request["IfMatch"] = self.base.etag
        with translated(self.where):
            response = await client.get_object(**request)
            async with response["Body"] as body:
                prefix = await body.read()
        if len(prefix) != kept:
            raise ConnectionError(errno.EIO, "short read of the object's old bytes", self.where)
        self._part_buffer().append(prefix)
        self._buffered += kept
        self._hold(kept)

    def _spawn(self, coroutine: Any, *, held: int = 0, slot: bool = False) -> None:
        """Run a part request; when it ends, however it ends (even cancelled before it
        started), its bytes and its slot are given back."""
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)

        def done(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            if held:
                self._unhold(held)
            if slot:
                self._slots.release()

        task.add_done_callback(done)

    async def _ensure_upload(self) -> str:
        if self._create_task is None:
            # tracked by the store: if we are cancelled while the request is out, the
            # cleanup still learns the upload id and aborts it
            self._create_task = self.store.spawn(self._create_upload())
        return await asyncio.shield(self._create_task)

    async def _create_upload(self) -> str:
        client = await self.store.client()
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key}
        if self.crc32:
            request["ChecksumAlgorithm"] = "CRC32"
        self._create_started = time.time()
        try:
            with translated(self.where):
                response = await client.create_multipart_upload(**request)
        except (ConnectionError, TimeoutError):
            # the request may have reached the endpoint and only the answer got lost:
            # an upload we do not know the id of may exist
            self._create_uncertain = True
            raise
        upload_id = str(response["UploadId"])
        _LIVE_UPLOADS.add(upload_id)
        return upload_id

    async def _send_buffer(self) -> None:
        upload_id = await self._ensure_upload()
        # no await from here to the task's creation: the bytes and the slot change
        # owner atomically
        body = self._part_buffer()
        size = self._buffered
        self._buffer = None
        self._buffered = 0
        self._holding_slot = False
        number = self._next_part
        self._next_part += 1
        if number > MAX_PARTS:
            self._unhold(size)
            self._slots.release()
            raise OSError(errno.EFBIG, "the upload exceeds S3's 10,000 parts", self.where)
        self._spawn(self._upload_part(upload_id, number, body), held=size, slot=True)

    async def _send_body(self, body: PartBody, request: Any) -> Any:
        try:
            return await send_while_moving(body, request, self.stall_timeout, self.where)
        except TimeoutError:
            REQUEST_ERRORS["timeout"] += 1
            raise

    async def _checksum(self, buffer: PartBuffer, number: int = 1) -> dict[str, str]:
        with buffer.view() as body:
            return await self._checksum_of(body, number)

    async def _checksum_of(self, body: memoryview, number: int = 1) -> dict[str, str]:
        if self.crc32:
            if len(body) > _THREAD_CHECKSUM:
                crc = await asyncio.to_thread(zlib.crc32, body)
            else:
                crc = zlib.crc32(body)
            self._part_crcs[number] = (crc, len(body))
            return {"ChecksumCRC32": base64.b64encode(crc.to_bytes(4, "big")).decode()}
        if len(body) > _THREAD_CHECKSUM:
            digest = await asyncio.to_thread(lambda: hashlib.md5(body).digest())
        else:
            digest = hashlib.md5(body).digest()
        self._part_md5 = digest.hex()
        return {"ContentMD5": base64.b64encode(digest).decode()}

    def _derived_checksums(self, parts: int) -> dict[str, str]:
        """What the parts' own checksums (computed and verified anyway) say about the
        whole of a new object: its CRC-32 (combined), or its MD5 (one part)."""
        if self.mode != "w" or self.start:
            return {}
        if self.crc32:
            crcs = [self._part_crcs.get(number) for number in range(1, parts + 1)]
            if not crcs or any(entry is None for entry in crcs):
                return {}
            crc = 0
            for entry in crcs:
                assert entry is not None
                crc = crc32_combine(crc, entry[0], entry[1])
            return {"crc32": f"{crc:08x}"}
        if parts == 1 and self._part_md5:
            return {"md5": self._part_md5}
        return {}

    async def _upload_part(self, upload_id: str, number: int, body: PartBuffer) -> None:
        try:
            checksum = await self._checksum(body, number)
            client = await self.store.client()
            part_body = body.body()
            with translated(self.where):
                response = await self._send_body(part_body, client.upload_part(
                    Bucket=self.bucket, Key=self.key, UploadId=upload_id, PartNumber=number,
                    Body=part_body, ContentLength=len(body), **checksum,
                ))
            part = {"PartNumber": number, "ETag": response["ETag"]}
            if response.get("ChecksumCRC32"):
                part["ChecksumCRC32"] = response["ChecksumCRC32"]
            self._parts[number] = part
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # reported by the next write or the commit
            if self._failure is None:
                self._failure = exc

    async def _copy_part(self, number: int, first: int, last: int) -> None:
        assert self.base is not None
        try:
            upload_id = await self._ensure_upload()
            client = await self.store.client()
            request: dict[str, Any] = {
                "Bucket": self.bucket, "Key": self.key, "UploadId": upload_id,
                "PartNumber": number, "CopySource": {"Bucket": self.bucket, "Key": self.key},
                "CopySourceRange": f"bytes={first}-{last}",
            }
            if self.base.etag:
                request["CopySourceIfMatch"] = self.base.etag
            with translated(self.where):
                response = await client.upload_part_copy(**request)
            result = response["CopyPartResult"]
            part = {"PartNumber": number, "ETag": result["ETag"]}
            if result.get("ChecksumCRC32"):
                part["ChecksumCRC32"] = result["ChecksumCRC32"]
            self._parts[number] = part
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            if self._failure is None:
                self._failure = exc

    async def _put_single(self, body: PartBuffer) -> None:
        checksum = await self._checksum(body)
        client = await self.store.client()
        part_body = body.body()
        if self.checksums:
            self.checksums = {**self._derived_checksums(1), **self.checksums}
        metadata = checksum_metadata(self.checksums) if self.mode == "w" else {}
        extra: dict[str, Any] = {"Metadata": metadata} if metadata else {}
        with self._refused_if_taken(), translated(self.where):
            response = await self._send_body(part_body, client.put_object(
                Bucket=self.bucket, Key=self.key, Body=part_body, ContentLength=len(body),
                **checksum, **self._if_free(), **extra,
            ))
        self.etag = response.get("ETag")

    async def _complete_shielded(self) -> None:
        """CompleteMultipartUpload, carried to its end even if we are cancelled meanwhile:
        once asked, the endpoint decides, and aborting at the same time would race it.
        Should it then fail, the upload is aborted in the background."""
        completing = self.store.spawn(self._complete())
        try:
            await asyncio.shield(completing)
        except asyncio.CancelledError:
            self._state = "committed"  # not ours to abort any more

            def finished(task: asyncio.Task[None]) -> None:
                if task.cancelled() or task.exception() is not None:
                    self.store.spawn(self._cleanup([]))

            completing.add_done_callback(finished)
            raise

    async def _complete(self) -> None:
        assert self._create_task is not None
        upload_id = self._create_task.result()
        parts = [self._parts[number] for number in sorted(self._parts)]
        client = await self.store.client()
        with self._refused_if_taken(), translated(self.where):
            response = await client.complete_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=upload_id,
                MultipartUpload={"Parts": parts}, **self._if_free(),
            )
        _LIVE_UPLOADS.discard(upload_id)
        self.etag = response.get("ETag")
        if self.checksums and self.mode == "w":
            values = {**self._derived_checksums(len(parts)), **self.checksums}
            self.store.remember(self.bucket, self.key, self.etag, values)

    def _if_free(self) -> dict[str, str]:
        return {"IfNoneMatch": "*"} if self.exclusive else {}

    @contextlib.contextmanager
    def _refused_if_taken(self) -> Iterator[None]:
        """An exclusive write whose key was taken meanwhile: FileExistsError."""
        try:
            yield
        except ObjectChanged:
            if not self.exclusive:
                raise
            raise FileExistsError(
                errno.EEXIST, "the name was taken by another upload meanwhile", self.where
            ) from None

    async def _cleanup(self, tasks: list[asyncio.Task[None]]) -> None:
        """Wait for every part request to stop, then abort the upload.

        When the endpoint cannot be reached (maybe why the upload failed), the abort
        is retried in the background until it is back, and the caller is not kept
        waiting: its transfer already failed and deserves its reply now.
        """
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._create_task is None:
            return
        try:
            upload_id = await self._create_task
        except BaseException:
            if self._create_uncertain and not await self._abort_strays():
                self.store.spawn(self._retry_later(self._abort_strays, "uploads of"))
            return
        if not await self._abort_upload(upload_id):
            self.store.spawn(self._retry_later(lambda: self._abort_upload(upload_id), upload_id))

    async def _abort_upload(self, upload_id: str) -> bool:
        """One AbortMultipartUpload; False when worth trying again later."""
        try:
            client = await self.store.client()
            with translated(self.where):
                await client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self.key, UploadId=upload_id
                )
        except FileNotFoundError:
            pass  # already gone (completed, or aborted by a lifecycle rule)
        except (ConnectionError, TimeoutError):
            return False
        except Exception:
            self._log_orphan(upload_id)
        _LIVE_UPLOADS.discard(upload_id)
        return True

    async def _abort_strays(self) -> bool:
        """Abort the upload a lost CreateMultipartUpload answer may have left.

        S3 gives no idempotency token, so it is recognised by its key and its start
        time, and by not being one of this process's live uploads; another process
        writing the same key at the same moment would see its upload fail.
        """
        try:
            client = await self.store.client()
            with translated(self.where):
                response = await client.list_multipart_uploads(
                    Bucket=self.bucket, Prefix=self.key
                )
        except (ConnectionError, TimeoutError):
            return False
        except Exception:
            self._log_orphan("(unknown id)")
            return True
        since = self._create_started - _STRAY_WINDOW
        for upload in response.get("Uploads") or ():
            initiated = upload.get("Initiated")
            if (
                upload.get("Key") == self.key
                and upload.get("UploadId") not in _LIVE_UPLOADS
                and initiated is not None
                and initiated.timestamp() >= since
                and not await self._abort_upload(str(upload["UploadId"]))
            ):
                return False
        return True

    async def _retry_later(self, attempt: Any, what: str) -> None:
        delay = 1.0
        for _ in range(_ABORT_ATTEMPTS):
            await asyncio.sleep(delay)  # backoff while the endpoint is away
            delay = min(delay * 2, 30.0)
            if await attempt():
                return
        self._log_orphan(what)

    def _log_orphan(self, upload_id: str) -> None:
        logger.warning(
            "could not abort multipart upload %s of s3://%s/%s; its parts stay until a "
            "lifecycle rule removes them", upload_id, self.bucket, self.key,
            exc_info=sys.exc_info()[0] is not None,
        )
