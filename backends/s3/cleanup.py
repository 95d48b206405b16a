"""Incomplete multipart uploads left under an S3 root by a process that was killed.

An upload streams into a multipart upload that becomes the object only when it
completes; a failed or aborted transfer aborts it.  A process killed outright cannot,
and the parts it sent stay (and are billed) until someone aborts the upload.  This
finds the multipart uploads under a root's prefix (ListMultipartUploads) and aborts
those nothing has written to for longer than ``max_age``: begun before the cutoff and,
because a large upload may run for hours, with no part sent since either (ListParts).
S3 has no locks, so the age is the only sign that no node is still writing there.

Objects themselves are never touched: an incomplete upload is invisible to clients.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import PurePath, PurePosixPath
from typing import Any

from ..recovery.report import Action, RootReport, record_action, stale_text
from . import keys
from .errors import translated

__all__ = ("S3Cleanup",)

#: ListParts pages looked at per upload (S3 allows 10,000 parts: 10 pages of 1,000).
_PART_PAGES = 10


def _timestamp(value: Any) -> float | None:
    return value.timestamp() if isinstance(value, datetime) else None


class S3Cleanup:
    """The recovery of one S3 root (a ``backends.recovery.RootRecovery``).

    ``factory`` is the root's path-io factory from ``backend_for_root``: its ``state``
    (the root's store) holds the shared client, and ``aclose()`` gives it back.
    ``max_uploads`` bounds the uploads looked at in one run.
    """

    def __init__(self, factory: Any, root: PurePath, max_age: float, *, root_url: str = "",
                 dry_run: bool = False, max_uploads: int = 100_000,
                 now: float | None = None) -> None:
        location = keys.locate(PurePosixPath(root))
        self.factory = factory
        self.bucket = location.bucket
        self.prefix = location.prefix
        self.max_age = max_age
        self.dry_run = dry_run
        self.max_uploads = max_uploads
        #: uploads begun (or last written) at or after this moment are kept
        self.cutoff = (time.time() if now is None else now) - max_age
        self.report = RootReport(root_url or f"s3://{self.bucket}/{self.prefix}")
        self._marker: dict[str, str] = {}

    @property
    def _where(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    async def run(self, *, deadline: float | None = None) -> bool:
        if self.report.done:
            return True
        if not self.bucket:
            self.report.error("the root names no bucket: nothing to look at")
            self.report.done = True
            return True
        try:
            return await self._pages(deadline)
        except OSError as exc:  # the endpoint refused or is unreachable: one line
            self.report.error(f"cannot list multipart uploads: {exc.strerror or exc}")
            self.report.done = True
            return True

    async def _pages(self, deadline: float | None) -> bool:
        client = await self.factory.state.client()
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            request: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix, **self._marker}
            with translated(self._where):
                page = await client.list_multipart_uploads(**request)
            for upload in page.get("Uploads") or ():
                self.report.examined += 1
                if self.report.examined > self.max_uploads:
                    self.report.truncated = self.report.done = True
                    self.report.error(f"stopped after {self.max_uploads} uploads")
                    return True
                await self._consider(client, upload)
            key_marker = page.get("NextKeyMarker")
            upload_marker = page.get("NextUploadIdMarker")
            if not page.get("IsTruncated") or not (key_marker or upload_marker):
                self.report.done = True
                return True
            self._marker = {"KeyMarker": key_marker or "", "UploadIdMarker": upload_marker or ""}

    async def _consider(self, client: Any, upload: dict[str, Any]) -> None:
        key = str(upload.get("Key", ""))
        upload_id = str(upload.get("UploadId", ""))
        initiated = _timestamp(upload.get("Initiated"))
        if not key.startswith(self.prefix) or not upload_id:
            return
        if initiated is None or initiated >= self.cutoff:
            self.report.kept += 1
            return
        last_part = await self._last_part(client, key, upload_id)
        if last_part is not None and last_part >= self.cutoff:
            self.report.kept += 1  # begun long ago, still receiving parts
            return
        where = f"s3://{self.bucket}/{key}"
        detail = (f"incomplete multipart upload {upload_id}, begun "
                  f"{datetime.fromtimestamp(initiated).isoformat(timespec='seconds')}, "
                  f"{stale_text(self.max_age)}")
        if self.dry_run:
            record_action(self.report, Action("would abort", where, detail))
            return
        try:
            with translated(where):
                await client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except FileNotFoundError:
            return  # completed or aborted meanwhile
        except OSError as exc:
            self.report.error(f"cannot abort upload {upload_id} of {where}: {exc.strerror or exc}")
            return
        record_action(self.report, Action("aborted", where, detail))

    async def _last_part(self, client: Any, key: str, upload_id: str) -> float | None:
        """When the upload last received a part (None: no part yet)."""
        latest: float | None = None
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "UploadId": upload_id}
        for _ in range(_PART_PAGES):
            try:
                with translated(f"s3://{self.bucket}/{key}"):
                    page = await client.list_parts(**request)
            except FileNotFoundError:
                return None
            for part in page.get("Parts") or ():
                stamp = _timestamp(part.get("LastModified"))
                if stamp is not None and (latest is None or stamp > latest):
                    latest = stamp
            marker = page.get("NextPartNumberMarker")
            if not page.get("IsTruncated") or not marker:
                break
            request["PartNumberMarker"] = marker
        return latest

    async def aclose(self) -> None:
        aclose = getattr(self.factory, "aclose", None)
        if aclose is not None:
            await aclose()
