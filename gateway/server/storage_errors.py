"""Storage failures mapped to FTP replies, in one place.

Backends raise ``PathIOError`` carrying the cause (see ``backends.errors``); the
protocol chooses the reply from the cause's meaning, never from the backend.
"""

from __future__ import annotations

import errno

from backends.errors import PathEscapesRoot, PathIOError

__all__ = ("reply_for_storage_error",)

_BY_TYPE: tuple[tuple[type[BaseException], str, str], ...] = (
    (PathEscapesRoot, "550", "permission denied: path outside the user's root"),
    (FileNotFoundError, "550", "no such file or directory"),
    (FileExistsError, "550", "file or directory already exists"),
    (NotADirectoryError, "550", "not a directory"),
    (IsADirectoryError, "550", "is a directory"),
    (PermissionError, "550", "permission denied"),
    (ConnectionError, "451", "storage unavailable, try again later"),
    (TimeoutError, "451", "storage timed out, try again later"),
)


_UNSUPPORTED = frozenset({errno.EOPNOTSUPP, errno.ENOTSUP})


def reply_for_storage_error(exc: BaseException) -> tuple[str, str]:
    """(code, text) for a storage exception, by the meaning of its cause."""
    cause = exc.cause if isinstance(exc, PathIOError) else exc
    if cause is None and exc.__cause__ is not None:
        cause = exc.__cause__
    if cause is None:
        return "451", "requested action aborted: storage error"
    if isinstance(cause, OSError) and cause.errno in _UNSUPPORTED:
        # a write this storage can never store faithfully (S3 resume before the end):
        # RFC 3659's "invalid REST parameter", with the storage's own explanation
        detail = cause.strerror or "not supported by this storage"
        return "554", f"requested action not taken: {detail}"
    for kind, code, text in _BY_TYPE:
        if isinstance(cause, kind):
            return code, text
    if isinstance(cause, OSError):
        if cause.errno == errno.ENOTEMPTY:
            return "550", "directory not empty"
        if cause.errno == errno.EXDEV:
            # a move between stores that cannot be made (a directory between folders)
            return "553", f"requested action not taken: {cause.strerror or 'cannot move across storage'}"
        if cause.errno in (errno.ENOSPC, errno.EDQUOT):
            return "452", "insufficient storage space"
        if cause.errno == errno.EFBIG:
            # the file may not grow this large (an account's largest file, the store's)
            detail = cause.strerror or "file too large"
            return "552", f"exceeded storage allocation: {detail}"
        if cause.errno == errno.ENAMETOOLONG:
            return "553", "file name not allowed: too long"
        if cause.errno == errno.EINVAL:
            return "553", "file name not allowed"
        if cause.errno == errno.EILSEQ:
            return "553", "file name not allowed: not valid in this storage's encoding"
    if isinstance(cause, UnicodeError):
        # a name storage cannot encode (bytes that are not UTF-8, for a store that
        # needs UTF-8): it will fail the same way every time, so not a 4xx
        return "553", "file name not allowed: not valid in this storage's encoding"
    return "451", "requested action aborted: storage error"
