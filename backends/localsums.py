"""Checksums of local files: an extended attribute, or this process's memory.

A file's checksums live in one extended attribute, ``user.gateway.checksums``::

    gateway-checksums/1 size=1048576 mtime_ns=1767225600123456789 crc32=... sha256=...

written with one ``fsetxattr`` on the open file, so it is attached to exactly the bytes
hashed: on an upload's temporary just before it is renamed into place (a rename keeps
it), or on a file read to its end by HASH when nothing changed it meanwhile.  The
stamp (size and modification time) makes it self-checking: a file changed by anyone
else (another program, a restored backup) no longer matches its stamp and the values
are ignored, never answered (a change that keeps both, a same-length rewrite whose
time is set back with ``touch -r``, is the one thing it cannot see).  Our own in-place writes (APPE, REST + STOR) remove the
attribute before their first byte.  ``getfattr -n user.gateway.checksums FILE`` shows it.

Where the filesystem has no user extended attributes (some network and FAT
filesystems) the values are remembered in this process instead, by device, inode, size
and modification time: correct, but lost at restart and not shared with other nodes.

All of this is synchronous; the path-ios call it inline or in their thread pool.
"""

from __future__ import annotations

import errno
import os
import stat as stat_module
from collections.abc import Mapping

from .checksums import ChecksumMemo, Stored, decode_record, encode_record

__all__ = ("ATTRIBUTE", "MEMO", "drop", "forget", "keep", "load", "read_stored", "restamp")

ATTRIBUTE = "user.gateway.checksums"
#: Values of files on filesystems without user extended attributes.
MEMO = ChecksumMemo()
#: What says "this filesystem (or this file) takes no such attribute".
_NO_XATTR = frozenset({
    errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.EACCES, errno.E2BIG,
    errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.ENOSYS,
})
_ABSENT = frozenset({errno.ENODATA, *_NO_XATTR})
_HAS_XATTR = hasattr(os, "getxattr")


def _stamp(st: os.stat_result) -> dict[str, int]:
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def load(fd: int, st: os.stat_result) -> dict[str, str]:
    """The values valid for the open file ``fd`` whose stat is ``st``."""
    values = MEMO.get(_identity(st))
    if not _HAS_XATTR:
        return values
    try:
        raw = os.getxattr(fd, ATTRIBUTE)
    except OSError as exc:
        if exc.errno in _ABSENT:
            return values
        raise
    record = decode_record(raw)
    if record is not None and record[0] == _stamp(st):
        return {**record[1], **values}
    return values


def read_stored(path: str | os.PathLike[str]) -> Stored | None:
    """The checksums valid for ``path`` now (maybe none) and its size, without
    reading its bytes; None for what is not a regular file.

    The file is opened (never for its content) so the attribute and the stat come
    from the same inode, whatever is renamed over the name meanwhile.
    """
    # O_NONBLOCK: a FIFO must not block the open; it is no regular file anyway
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if stat_module.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), os.fspath(path))
        if not stat_module.S_ISREG(st.st_mode):
            return None
        values = load(fd, st)
    finally:
        os.close(fd)
    return Stored(st.st_size, values)


def keep(fd: int, values: Mapping[str, str], *, merge: bool = True) -> None:
    """Attach ``values`` to the open file ``fd`` as it is now (flushed by the caller);
    ``merge`` keeps the values already valid for it.  Never raises for a filesystem
    that takes no attribute: the process memo holds them then."""
    st = os.fstat(fd)
    known = load(fd, st) if merge else {}
    merged = {**known, **values}
    if _HAS_XATTR:
        try:
            os.setxattr(fd, ATTRIBUTE, encode_record(merged, _stamp(st)))
            return
        except OSError as exc:
            if exc.errno not in _NO_XATTR:
                raise
    MEMO.add(_identity(st), merged)


def drop(fd: int) -> None:
    """The open file's bytes are about to change: forget its values."""
    st = os.fstat(fd)
    MEMO.forget([_identity(st)])
    if not _HAS_XATTR:
        return
    try:
        os.removexattr(fd, ATTRIBUTE)
    except OSError as exc:
        if exc.errno not in _ABSENT:
            raise


def forget(path: str | os.PathLike[str]) -> None:
    """``path`` is about to be deleted or replaced: drop what the memo holds for it, so
    a new file that happens to reuse its inode, size and time is never taken for it."""
    if not MEMO:
        return
    try:
        st = os.lstat(path)
    except OSError:
        return
    MEMO.forget([_identity(st)])


def restamp(path: str | os.PathLike[str], mtime: float) -> None:
    """Set ``path``'s modification time (MFMT) and carry its valid values over to the
    new stamp: the bytes did not change, so neither did their checksums."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except PermissionError:
        # not readable by us, yet ours to date: dated by name (its checksums, if any,
        # no longer match the new time and will be recomputed)
        os.utime(path, (os.stat(path).st_atime, mtime))
        return
    try:
        st = os.fstat(fd)
        values = load(fd, st) if stat_module.S_ISREG(st.st_mode) else {}
        os.utime(fd, (st.st_atime, mtime))
        if values:
            keep(fd, values, merge=False)
    finally:
        os.close(fd)
