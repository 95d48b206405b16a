"""S3 failures translated to the built-in exceptions the protocol understands.

This is the one boundary where botocore and aiohttp exceptions stop: every call to
the endpoint runs inside :func:`translated`, which raises the built-in cause
(``FileNotFoundError`` for ``NoSuchKey``, ``PermissionError`` for ``AccessDenied``,
``ConnectionError`` once retries are exhausted...) chained to the original for the
logs.  ``universal_exception`` then wraps it into ``PathIOError``.

Retries with backoff (``SlowDown``, 5xx, throttling, dropped connections) are
botocore's own "standard" retry mode, configured in ``client.py``; what reaches this
module has already been retried.
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)

__all__ = (
    "REQUEST_ERRORS",
    "ObjectChanged",
    "UnsupportedWrite",
    "error_code",
    "is_not_found",
    "translate",
    "translated",
)

_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchBucket", "NoSuchUpload"})
_DENIED = frozenset(
    {
        "403",
        "AccessDenied",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AccountProblem",
        "InvalidObjectState",
        "ExpiredToken",
        "InvalidToken",
    }
)
_UNAVAILABLE = frozenset(
    {
        "500",
        "502",
        "503",
        "504",
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeTooSkewed",
    }
)
_INTEGRITY = frozenset({"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "InvalidChecksum"})
_CHANGED = frozenset({"412", "PreconditionFailed"})


class ObjectChanged(OSError):
    """The object was replaced while it was being read or copied."""

    def __init__(self, where: str) -> None:
        super().__init__(errno.ESTALE, "the object changed during the operation", where)


class UnsupportedWrite(PermissionError):
    """A write S3 cannot store faithfully (a resume that would leave a stale tail).

    A ``PermissionError`` so the protocol refuses it with a 5xx reply: it will fail
    the same way every time, unlike the transient 4xx.
    """

    def __init__(self, message: str, where: str) -> None:
        super().__init__(errno.EOPNOTSUPP, message, where)


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def is_not_found(exc: BaseException) -> bool:
    """Whether ``exc`` says the key (not the bucket) does not exist."""
    if not isinstance(exc, ClientError):
        return False
    code = error_code(exc)
    return code in ("404", "NoSuchKey", "NotFound") or (not code and _status(exc) == 404)


def translate(exc: BaseException, where: str) -> BaseException:
    """The built-in exception that says what ``exc`` means for the path ``where``."""
    if isinstance(exc, ClientError):
        code = error_code(exc)
        status = _status(exc)
        message = str(exc.response.get("Error", {}).get("Message", "")) or code
        if code == "NoSuchBucket":
            return FileNotFoundError(errno.ENOENT, f"no such bucket ({message})", where)
        if code in _NOT_FOUND or (status == 404 and code not in _DENIED):
            return FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), where)
        if code in _DENIED or status == 403:
            return PermissionError(errno.EACCES, f"S3 refused access: {code}", where)
        if code in _CHANGED:
            return ObjectChanged(where)
        if code in _UNAVAILABLE or status >= 500:
            return ConnectionError(errno.EAGAIN, f"S3 unavailable after retries: {code}", where)
        if code in _INTEGRITY:
            return OSError(errno.EIO, f"S3 rejected the data's checksum: {code}", where)
        if code == "EntityTooLarge":
            return OSError(errno.EFBIG, os.strerror(errno.EFBIG), where)
        if code in ("QuotaExceeded", "TooManyBuckets"):
            return OSError(errno.EDQUOT, os.strerror(errno.EDQUOT), where)
        if code == "KeyTooLongError":
            return OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), where)
        return OSError(errno.EIO, f"S3 error {code or status}: {message}", where)
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return PermissionError(errno.EACCES, f"no usable S3 credentials: {exc}", where)
    if isinstance(exc, (ConnectTimeoutError, ReadTimeoutError, asyncio.TimeoutError)):
        return TimeoutError(errno.ETIMEDOUT, f"S3 timed out: {exc}", where)
    if isinstance(
        exc,
        (EndpointConnectionError, ConnectionClosedError, aiohttp.ClientConnectionError,
         aiohttp.ClientPayloadError, ConnectionError),
    ):
        return ConnectionError(errno.ECONNREFUSED, f"S3 endpoint unreachable: {exc}", where)
    if isinstance(exc, (BotoCoreError, aiohttp.ClientError)):
        return OSError(errno.EIO, f"S3 client error: {exc}", where)
    return exc


#: What ``translated`` converts; anything else (our own built-in errors, bugs) passes.
CLIENT_ERRORS: tuple[type[BaseException], ...] = (
    BotoCoreError,
    ClientError,
    aiohttp.ClientError,
)


@contextmanager
def translated(where: Any) -> Iterator[None]:
    """Raise the built-in meaning of any S3 client failure inside the block."""
    try:
        yield
    except CLIENT_ERRORS as exc:
        meaning = translate(exc, str(where))
        REQUEST_ERRORS[_kind(meaning)] += 1
        raise meaning from exc


#: S3 requests that failed (after botocore's retries), by kind: "not_found",
#: "denied", "unavailable", "timeout", "other".  Read by monitoring (the server's
#: metrics endpoint); storage itself never looks at it.
REQUEST_ERRORS: Counter[str] = Counter()


def _kind(meaning: BaseException) -> str:
    if isinstance(meaning, FileNotFoundError):
        return "not_found"
    if isinstance(meaning, PermissionError):
        return "denied"
    if isinstance(meaning, TimeoutError):
        return "timeout"
    if isinstance(meaning, ConnectionError):
        return "unavailable"
    return "other"
