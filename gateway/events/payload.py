"""The event a listener sends: an :class:`~gateway.server.events.Operation` as JSON.

Pure: the same operation, id and node always give the same bytes, so the body written
to the outbox is the body signed and sent, on every attempt.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from gateway.server.events import Operation

__all__ = ("BUCKET_SCHEMES", "encode", "event_payload", "iso_time", "storage_location")

#: URL schemes whose first path part is a bucket (container) and the rest its key
BUCKET_SCHEMES = frozenset({"s3", "s3a", "gs", "gcs", "abfs", "az", "r2"})


def iso_time(epoch: float) -> str:
    """ISO 8601 in UTC with milliseconds: ``2026-12-02T15:12:28.123Z``."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def storage_location(storage_root: str | None, real: str | None) -> dict[str, Any] | None:
    """Where the file is in storage: the path there, and a URL naming it.

    For bucket storage the real path is ``/bucket/key``: the URL is
    ``s3://bucket/key`` and ``bucket`` and ``key`` are given apart.  A local root
    gives a ``file://`` URL.  None when the operation touched no file.
    """
    if real is None:
        return None
    where: dict[str, Any] = {"root": storage_root, "path": real}
    scheme = storage_root.partition("://")[0].lower() if storage_root and "://" in storage_root else ""
    if not scheme or scheme == "file":
        path = PurePosixPath(real)
        where["url"] = path.as_uri() if path.is_absolute() else None
    elif scheme in BUCKET_SCHEMES:
        parts = PurePosixPath(real).parts
        bucket = parts[1] if len(parts) > 1 else ""
        key = "/".join(parts[2:])
        where.update(url=f"{scheme}://{bucket}/{key}", bucket=bucket, key=key)
    elif scheme == "memory":
        where["url"] = f"memory://{real}"
    else:
        where["url"] = f"{scheme}://{real.lstrip('/')}"
    return where


def event_payload(operation: Operation, *, event_id: str, node: str) -> dict[str, Any]:
    """The event as a JSON-ready mapping.

    ``size``, ``checksums`` and ``duration`` come from the transfer record when there
    is one; ``checksums`` holds what the upload computed (``sha256`` by default).
    """
    record = operation.record
    size = operation.size
    if size is None and record is not None:
        size = record.size
    payload: dict[str, Any] = {
        "id": event_id,
        "kind": operation.kind,
        "time": iso_time(operation.time),
        "node": node,
        "account": operation.login,
        "path": operation.path,
        "storage": storage_location(operation.storage_root, operation.real),
        "backend": operation.backend or None,
        "size": size,
        "checksums": dict(record.checksums) if record is not None else {},
        "duration": round(record.seconds, 6) if record is not None else None,
        "client": {"address": operation.client_host},
        "session": operation.session_id,
    }
    if operation.kind == "rename":
        payload["target"] = operation.target
        payload["target_storage"] = storage_location(operation.storage_root, operation.target_real)
    return payload


def encode(payload: dict[str, Any]) -> bytes:
    """Compact, key-sorted UTF-8 JSON: the exact body that is signed and sent."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


