"""s3fs uploads as S3 multipart uploads, through s3fs's own coroutine ``_call_s3``.

The object appears only when the upload completes; a failed or cancelled transfer
aborts it, so no partial object is ever visible (the same promise as the native S3
backend).  Parts upload while the next one is being received: memory per upload is
``part_size x (parts_in_flight + 1)``.  A file smaller than one part is one PutObject.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from ..partbody import PartBody, send_while_moving

__all__ = ("MultipartSink", "supports_multipart")

logger = logging.getLogger("backends.fsspec")


def supports_multipart(fs: Any) -> bool:
    """Whether ``fs`` is s3fs (or speaks like it): a ``_call_s3`` coroutine and ``split_path``."""
    return callable(getattr(fs, "_call_s3", None)) and callable(getattr(fs, "split_path", None))


class MultipartSink:
    def __init__(self, fs: Any, fs_path: str, part_size: int, parts_in_flight: int,
                 spawn: Callable[[Any], asyncio.Task[Any]], stall_timeout: float = 60.0) -> None:
        self._fs = fs
        self._path = fs_path
        self.bucket, self.key, _ = fs.split_path(fs_path)
        self.chunk_size = part_size
        self._spawn = spawn
        self.stall_timeout = stall_timeout
        self._slots = asyncio.Semaphore(parts_in_flight)
        self._upload_id: str | None = None
        self._parts: list[asyncio.Task[dict[str, Any]]] = []

    async def _call(self, method: str, **kwargs: Any) -> Any:
        return await self._fs._call_s3(method, Bucket=self.bucket, Key=self.key, **kwargs)

    def _raise_failed(self) -> None:
        for task in self._parts:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    async def _upload(self, number: int, body: bytes) -> dict[str, Any]:
        try:
            # a file over the part whose progress is watched: an endpoint that stops
            # reading mid-part fails the part instead of hanging the upload
            stream = PartBody(body)
            response = await send_while_moving(
                stream,
                self._call("upload_part", UploadId=self._upload_id, PartNumber=number,
                           Body=stream, ContentLength=len(body)),
                self.stall_timeout, self._path,
            )
            return {"PartNumber": number, "ETag": response["ETag"]}
        finally:
            self._slots.release()

    async def write(self, chunk: bytearray) -> None:
        self._raise_failed()
        if self._upload_id is None:
            response = await self._call("create_multipart_upload")
            self._upload_id = response["UploadId"]
        await self._slots.acquire()
        try:
            self._raise_failed()
        except BaseException:
            self._slots.release()
            raise
        number = len(self._parts) + 1
        self._parts.append(asyncio.ensure_future(self._upload(number, bytes(chunk))))

    async def commit(self, last: bytearray) -> None:
        try:
            if self._upload_id is None:
                stream = PartBody(bytes(last))
                await send_while_moving(
                    stream, self._call("put_object", Body=stream, ContentLength=len(last)),
                    self.stall_timeout, self._path,
                )
            else:
                if last:
                    await self.write(last)
                parts = await asyncio.gather(*self._parts)
                await self._call("complete_multipart_upload", UploadId=self._upload_id,
                                 MultipartUpload={"Parts": list(parts)})
                self._upload_id = None
        except BaseException:
            await self.abort()
            raise
        finally:
            self._fs.invalidate_cache(self._path)

    async def abort(self) -> None:
        parts, self._parts = self._parts, []
        for task in parts:
            task.cancel()
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is None and not parts:
            return

        async def cleanup() -> None:
            await asyncio.gather(*parts, return_exceptions=True)
            if upload_id is not None:
                try:
                    await self._fs._call_s3("abort_multipart_upload", Bucket=self.bucket,
                                            Key=self.key, UploadId=upload_id)
                except FileNotFoundError:
                    pass  # already gone
                except Exception:
                    logger.exception("aborting the upload of %s failed", self._path)
                    raise

        await asyncio.shield(self._spawn(cleanup()))
