"""Recovery of a local root: stale partial uploads removed, interrupted appends and
resumes rolled back from their undo journals (``backends.undo``).

The walk never follows symbolic links, checks that each directory it enters is the
one it listed, acts relative to that directory's descriptor, and stops after
``max_entries`` entries.  It runs in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import stat as stat_module
import threading
import time
from pathlib import Path

from ..local import is_internal_name, partial_head
from ..undo import (
    UndoHeader,
    Unrecognised,
    host_identity,
    iter_records,
    read_header,
    try_lock,
    write_all,
)
from .report import Action, RootReport, record_action, stale_text

__all__ = ("DEFAULT_MAX_ENTRIES", "LocalRecovery")

#: Directory entries one local root's walk looks at before it stops (a loop of bind
#: mounts, a pathological tree): the work is bounded whatever the disk holds.
DEFAULT_MAX_ENTRIES = 10_000_000

#: Exactly what ``partial_name`` makes: ".", at most 200 bytes of the name, the mark,
#: 12 lowercase hex digits.
_TEMPORARY = re.compile(r"\.(?P<head>.*)\.gateway-(?P<kind>partial|undo)-[0-9a-f]{12}", re.DOTALL)
_HEAD_BYTES = 200

_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_VERB = {"removed": "remove", "restored": "restore"}


class LocalRecovery:
    """Recovery of one local root: a walk in a worker thread, resumable between
    directories (``run`` with a deadline, then ``run`` again)."""

    def __init__(self, root: str | os.PathLike[str], max_age: float, *, dry_run: bool = False,
                 max_entries: int = DEFAULT_MAX_ENTRIES, now: float | None = None) -> None:
        self.root = Path(root)
        self.report = RootReport(str(root))
        self.max_age = max_age
        self.dry_run = dry_run
        self.max_entries = max_entries
        #: what changed at or after this moment may still be written: kept
        self.cutoff = (time.time() if now is None else now) - max_age
        self._stack: list[tuple[str, tuple[int, int] | None]] | None = None
        self._stop = threading.Event()

    async def run(self, *, deadline: float | None = None) -> bool:
        if self.report.done:
            return True
        work = asyncio.get_running_loop().run_in_executor(None, self.step, deadline)
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            self._stop.set()  # the thread stops at its next entry
            raise

    async def aclose(self) -> None:
        self._stop.set()

    # -- the walk (worker thread) ---------------------------------------------------

    def step(self, deadline: float | None = None) -> bool:
        """Walk until done or past ``deadline``; True when done."""
        if self._stack is None:
            try:
                start = os.path.realpath(self.root)  # the root itself may be a link
            except OSError as exc:
                self.report.error(f"cannot resolve the root: {exc.strerror or exc}")
                self.report.done = True
                return True
            self._stack = [(start, None)]
        while self._stack and not self.report.done:
            if self._stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
                return False
            directory, expected = self._stack.pop()
            self._directory(directory, expected)
        self.report.done = True
        return True

    def _directory(self, directory: str, expected: tuple[int, int] | None) -> None:
        try:
            fd = os.open(directory, _DIRECTORY_FLAGS)
        except FileNotFoundError:
            return  # gone since it was listed (or a root not created yet)
        except OSError as exc:
            if expected is not None and exc.errno in (errno.ELOOP, errno.ENOTDIR):
                return  # replaced by a link or a file since it was listed: not followed
            self.report.error(f"cannot open {directory}: {exc.strerror or exc}")
            return
        try:
            st = os.fstat(fd)
            if expected is not None and (st.st_dev, st.st_ino) != expected:
                return  # not the directory that was listed: leave it
            candidates = self._scan(fd, directory)
            for name, kind, head in candidates:
                if self._stop.is_set():
                    return
                try:
                    if kind == "partial":
                        self._partial(fd, directory, name)
                    else:
                        self._journal(fd, directory, name, head)
                except OSError as exc:
                    self.report.error(f"{os.path.join(directory, name)}: {exc.strerror or exc}")
        finally:
            os.close(fd)

    def _scan(self, fd: int, directory: str) -> list[tuple[str, str, str]]:
        """Queue the subdirectories; return the temporaries of this directory."""
        assert self._stack is not None
        candidates: list[tuple[str, str, str]] = []
        try:
            with os.scandir(fd) as entries:
                for entry in entries:
                    if self._stop.is_set():
                        break
                    self.report.examined += 1
                    if self.report.examined > self.max_entries:
                        self.report.truncated = self.report.done = True
                        self.report.error(
                            f"stopped after {self.max_entries} entries; "
                            "temporaries further down were not checked"
                        )
                        break
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            child = entry.stat(follow_symlinks=False)
                            self._stack.append(
                                (os.path.join(directory, entry.name), (child.st_dev, child.st_ino))
                            )
                            continue
                    except OSError:
                        continue
                    match = _TEMPORARY.fullmatch(entry.name)
                    if match is None or len(os.fsencode(match["head"])) > _HEAD_BYTES:
                        continue
                    candidates.append((entry.name, match["kind"], match["head"]))
        except OSError as exc:
            self.report.error(f"cannot list {directory}: {exc.strerror or exc}")
        return candidates

    def _act(self, kind: str, where: str, detail: str) -> None:
        record_action(self.report, Action(kind, where, detail))

    def _done(self, kind: str, where: str, detail: str) -> None:
        """Record an action: done, or only announced in a dry run."""
        self._act(("would " + _VERB[kind]) if self.dry_run else kind, where, detail)

    def _partial(self, dir_fd: int, directory: str, name: str) -> None:
        where = os.path.join(directory, name)
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if not stat_module.S_ISREG(st.st_mode):
            return
        if st.st_mtime >= self.cutoff:
            self.report.kept += 1
            return
        try:
            fd = os.open(name, os.O_RDONLY | _FILE_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            return  # finished (renamed into place) or removed meanwhile
        try:
            if try_lock(fd) is False:
                self.report.kept += 1  # an upload still holds it
                return
            mine = os.fstat(fd)
            if mine.st_mtime >= self.cutoff:
                self.report.kept += 1
                return
            detail = f"partial upload, {mine.st_size} bytes, {stale_text(self.max_age)}"
            if not self.dry_run:
                try:
                    named = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                except FileNotFoundError:
                    return  # renamed into place or removed meanwhile
                if (named.st_dev, named.st_ino) != (mine.st_dev, mine.st_ino):
                    return
                os.unlink(name, dir_fd=dir_fd)
            self._done("removed", where, detail)
        finally:
            os.close(fd)

    def _journal(self, dir_fd: int, directory: str, name: str, head: str) -> None:
        where = os.path.join(directory, name)
        try:
            fd = os.open(name, os.O_RDWR | _FILE_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            return
        try:
            st = os.fstat(fd)
            if not stat_module.S_ISREG(st.st_mode):
                return
            lock = try_lock(fd)
            if lock is False:
                self.report.kept += 1  # an append or resume is running
                return
            if os.fstat(fd).st_nlink == 0:
                return  # its writer finished and removed it while we opened it
            try:
                parsed = read_header(fd)
            except Unrecognised as exc:
                if st.st_mtime >= self.cutoff:
                    self.report.kept += 1
                    return
                self._act("left", where, f"{exc}; not a journal this version wrote, so "
                          "nothing is restored from it (delete it once the file is checked)")
                return
            if parsed is None:
                # the header is written before any byte of the file changes
                if st.st_mtime >= self.cutoff:
                    self.report.kept += 1
                    return
                if not self.dry_run:
                    os.unlink(name, dir_fd=dir_fd)
                self._done("removed", where, "undo journal cut short before its file changed")
                return
            header, start = parsed
            self._restore(dir_fd, directory, name, head, fd, st, lock, header, start)
        finally:
            os.close(fd)

    def _restore(self, dir_fd: int, directory: str, name: str, head: str, fd: int,
                 st: os.stat_result, lock: bool | None, header: UndoHeader, start: int) -> None:
        where = os.path.join(directory, name)
        target = os.fsdecode(header.name)
        if (not target or "/" in target or "\x00" in target or target in (".", "..")
                or is_internal_name(target) or partial_head(target) != head):
            self._act("left", where, "its header names no file this journal can be for")
            return
        target_path = os.path.join(directory, target)
        target_fd: int | None = None
        try:
            kind = os.stat(target, dir_fd=dir_fd, follow_symlinks=False).st_mode
        except FileNotFoundError:
            kind = None
        if kind is not None and not stat_module.S_ISREG(kind):
            # a link is never followed, a device or pipe never opened
            self._act("left", where, f"{target_path} is not a regular file now; not restored")
            return
        if kind is not None:
            try:
                target_fd = os.open(target, os.O_RDWR | _FILE_FLAGS, dir_fd=dir_fd)
            except FileNotFoundError:
                target_fd = None
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    self._act("left", where, f"{target_path} is a symbolic link now; not restored")
                    return
                raise
        try:
            target_st = os.fstat(target_fd) if target_fd is not None else None
            changed = st.st_mtime if target_st is None else max(st.st_mtime, target_st.st_mtime)
            why = self._abandoned(header, lock, changed)
            if why is None:
                self.report.kept += 1
                return
            if target_fd is None or target_st is None:
                if not self.dry_run:
                    os.unlink(name, dir_fd=dir_fd)
                self._done("removed", where, f"undo journal of {target_path}, which is gone")
                return
            if not stat_module.S_ISREG(target_st.st_mode):
                self._act("left", where, f"{target_path} is not a regular file now; not restored")
                return
            if header.inode and target_st.st_ino != header.inode:
                if not self.dry_run:
                    os.unlink(name, dir_fd=dir_fd)
                self._done("removed", where,
                           f"undo journal of an earlier {target_path}, replaced since")
                return
            if target_st.st_size < header.size:
                self._act("left", where, f"{target_path} is shorter than before the "
                          "interrupted write: changed since, so not restored")
                return
            detail = (f"{target_path} back to its {header.size} bytes before an interrupted "
                      f"append or resume ({why})")
            if not self.dry_run:
                # every step can be repeated: if this is cut off too, the journal is
                # still there and the next run does it all again
                for offset, old in iter_records(fd, start):
                    write_all(target_fd, old, offset)
                os.ftruncate(target_fd, header.size)
                os.fsync(target_fd)
                os.unlink(name, dir_fd=dir_fd)
                with contextlib.suppress(OSError):
                    os.fsync(dir_fd)
            self._done("restored", where, detail)
        finally:
            if target_fd is not None:
                os.close(target_fd)

    def _abandoned(self, header: UndoHeader, lock: bool | None, changed: float) -> str | None:
        """Why nothing can still be writing under this journal, or None."""
        boot = host_identity()[1]
        if boot and header.boot == boot and header.locked and lock is True:
            return "its writer on this machine is gone"
        if changed < self.cutoff:
            return stale_text(self.max_age)
        return None
