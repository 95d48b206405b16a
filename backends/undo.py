"""The undo journal of an in-place write on local disk, and who holds a temporary.

An in-place write (APPE, REST + STOR) changes the file itself, so the previous content
must be kept where a restarted process can find it: a hidden sibling,
``.<name>.gateway-undo-<hex>``, written before any byte of the file changes.  It
starts with one header line, then one record per range of old bytes a write covered::

    gateway-undo/1 {"size": ..., "inode": ..., "name": "<hex>", "host": ..., "boot": ...}\\n
    <offset: 8 bytes big-endian> <length: 8 bytes> <the old bytes>   (repeated)

``size`` is the file's size before the write: rolling back means putting every record's
bytes back, then truncating to it.  Both steps can be repeated, so a rollback that is
itself interrupted is simply done again.  ``name`` (hex of the bytes, which need not be
UTF-8) names the file in the same directory; ``inode`` tells whether it is still the
same file; ``boot`` (the kernel's boot id) tells whether the writer ran on this very
kernel, where a file lock is proof of life.

A record is appended with one ``write`` before the bytes it covers are overwritten, and
the file's own writes are buffered behind it, so after a crash every overwritten range
has its record; a record cut short covers bytes that were never overwritten.

The writer holds an exclusive ``flock`` on its journal and on its partial upload for as
long as it runs.  The kernel drops it when the process dies (kill -9 included), so a
lock that can be taken means: nobody on this kernel is writing there any more.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = (
    "HEADER_LIMIT",
    "UndoHeader",
    "Unrecognised",
    "host_identity",
    "iter_records",
    "read_header",
    "record",
    "try_lock",
    "write_all",
)

MAGIC = b"gateway-undo/1 "
#: A header is one short line; more than this without a newline is not ours.
HEADER_LIMIT = 4096
_RECORD_HEAD = 16


class Unrecognised(ValueError):
    """A file with an undo name whose content is not a journal this code wrote."""


@dataclass(frozen=True)
class UndoHeader:
    size: int  # the file's size before the in-place write
    inode: int  # the file's inode then (0: unknown)
    name: bytes  # the file's name, in the journal's directory
    host: str  # for messages
    boot: str  # the writer kernel's boot id ("" when unknown)
    locked: bool  # whether the writer could lock the journal

    def encode(self) -> bytes:
        fields = {
            "size": self.size, "inode": self.inode, "name": self.name.hex(),
            "host": self.host, "boot": self.boot, "locked": self.locked,
        }
        return MAGIC + json.dumps(fields, separators=(",", ":")).encode("ascii") + b"\n"


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as file:
            return file.read().strip()
    except OSError:
        return ""


_IDENTITY: tuple[str, str] | None = None


def host_identity() -> tuple[str, str]:
    """(host name, boot id) of this machine; the boot id is "" where the OS has none."""
    global _IDENTITY
    if _IDENTITY is None:
        _IDENTITY = (socket.gethostname(), _boot_id())
    return _IDENTITY


def read_header(fd: int) -> tuple[UndoHeader, int] | None:
    """The journal's header and where its records start; None when the header was cut
    short (the writer died before any byte of the file changed).

    Raises :class:`Unrecognised` for content this code did not write.
    """
    data = os.pread(fd, HEADER_LIMIT, 0)
    end = data.find(b"\n")
    if end < 0:
        if len(data) < HEADER_LIMIT and (MAGIC.startswith(data) or data.startswith(MAGIC)):
            return None
        raise Unrecognised("not an undo journal")
    line = data[:end]
    if not line.startswith(MAGIC):
        raise Unrecognised("not an undo journal")
    try:
        fields = json.loads(line[len(MAGIC):])
        header = UndoHeader(
            size=int(fields["size"]), inode=int(fields["inode"]),
            name=bytes.fromhex(fields["name"]), host=str(fields["host"]),
            boot=str(fields["boot"]), locked=bool(fields["locked"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise Unrecognised(f"bad journal header: {exc}") from None
    if header.size < 0:
        raise Unrecognised("bad journal header: negative size")
    return header, end + 1


def record(offset: int, old: bytes) -> bytes:
    return offset.to_bytes(8, "big") + len(old).to_bytes(8, "big") + old


def iter_records(fd: int, start: int, chunk: int = 1 << 20) -> Iterator[tuple[int, bytes]]:
    """(offset, old bytes) of each complete record from ``start``; a record cut short by
    a crash ends the journal (its bytes were never overwritten).  Long records come in
    pieces of at most ``chunk`` bytes, so memory stays bounded."""
    position = start
    while True:
        head = os.pread(fd, _RECORD_HEAD, position)
        if len(head) < _RECORD_HEAD:
            return
        offset = int.from_bytes(head[:8], "big")
        length = int.from_bytes(head[8:], "big")
        body = position + _RECORD_HEAD
        if os.fstat(fd).st_size < body + length:
            return
        done = 0
        while done < length:
            piece = os.pread(fd, min(chunk, length - done), body + done)
            if not piece:
                return
            yield offset + done, piece
            done += len(piece)
        position = body + length


def write_all(fd: int, data: bytes | memoryview, offset: int | None = None) -> None:
    """``os.write`` (or ``os.pwrite`` at ``offset``) until every byte is written."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view) if offset is None else os.pwrite(fd, view, offset)
        if written <= 0:
            raise OSError(errno.EIO, "short write")
        view = view[written:]
        if offset is not None:
            offset += written


def try_lock(fd: int) -> bool | None:
    """Take an exclusive ``flock`` without waiting: True when taken, False when another
    open file holds it, None when this filesystem has no locks."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        return None
    return True
