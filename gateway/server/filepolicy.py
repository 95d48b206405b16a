"""An account's file rules applied to a session: names, hiding, the largest upload.

The rules themselves are pure (:mod:`gateway.users.filerules`); this module is where
the server meets them, in three places:

* :func:`path_refusal`, from the command preconditions: a name the account may not
  create (STOR, APPE, STOU, MKD, RNTO) is refused with 553 before the handler runs;
  a hidden name is answered as a missing one (550) by every command that names it;
* :func:`guard_uploads`, when a session's storage is set up at login: the session's
  path I/O opens files for writing through :class:`GuardedUpload`, which refuses a
  name the rules forbid (the name STOU generated, too), refuses at once an upload
  whose size ALLO announced beyond the limit, and counts the bytes as they are
  written: past the limit the write fails, the transfer ends with 552 and, like any
  failed upload, is rolled back, so nothing of it is kept;
* :func:`allocation_refusal`, for ALLO: a size beyond the limit gets 552 at once.

The transfer code is not involved: it writes through whatever ``open`` returned.
"""

from __future__ import annotations

import copy
import errno
import io
import logging
import sys
import weakref
from collections.abc import Callable, Generator
from pathlib import PurePosixPath
from typing import Any

from backends.errors import PathIOError
from gateway.server.session import Session
from gateway.users.filerules import FileRules

__all__ = (
    "CREATES",
    "GuardedUpload",
    "HIDDEN_REPLY",
    "allocation_refusal",
    "file_rules",
    "guard_uploads",
    "path_hidden",
    "path_refusal",
)

logger = logging.getLogger("gateway.server")

#: What a command naming a hidden path gets: exactly what a missing path gets.
HIDDEN_REPLY = ("550", "no such file or directory")

#: Commands that create the name they are given, and whether it is a directory.
CREATES: dict[str, bool] = {"STOR": False, "APPE": False, "STOU": False, "RNTO": False,
                            "MKD": True, "XMKD": True}

_WRITE_MODES = frozenset("wax+")


def file_rules(user: Any) -> FileRules | None:
    """The user's file rules when they restrict anything (an aioftp-style user
    object without them, or with none set, has nothing to check)."""
    rules = getattr(user, "file_rules", None)
    if isinstance(rules, FileRules) and rules.active:
        return rules
    return None


async def path_refusal(
    session: Session, verb: str, argument: str, virtual: PurePosixPath
) -> tuple[str, str] | None:
    """The reply refusing ``verb`` on ``virtual`` under the account's file rules."""
    rules = file_rules(session.login.user)
    if rules is None:
        return None
    creates_dir = CREATES.get(verb)
    if creates_dir is not None:
        if verb == "STOU" and (not argument.strip(" ") or argument.endswith("/")):
            # the name is made up by the handler: the upload's open checks it
            return None
        reason = rules.creation_refusal(virtual, is_dir=creates_dir)
        if reason is not None and verb == "RNTO" and not rules.denied(virtual):
            # allowed names govern files: a directory may take any name not denied
            if await _renaming_a_directory(session):
                reason = None
        if reason is not None:
            logger.info("session %s: %s %s refused: %s", session.id, verb, virtual, reason)
            return "553", reason
        return None
    if rules.hidden(virtual):
        return HIDDEN_REPLY
    return None


def path_hidden(session: Session, virtual: PurePosixPath) -> bool:
    """Whether the account's rules hide ``virtual`` (for handlers that find their path
    themselves, as SITE's subcommands do)."""
    rules = file_rules(session.login.user)
    return rules is not None and rules.hidden(virtual)


async def _renaming_a_directory(session: Session) -> bool:
    source = session.login.rename_from
    if source is None:
        return False
    try:
        return bool(await session.path_io.is_dir(source))
    except Exception:
        return False  # the handler reports a source that went away


def allocation_refusal(session: Session, argument: str) -> tuple[str, str] | None:
    """ALLO: remember the announced size for the next upload; 552 now when the
    account's largest file is smaller."""
    size = _allocated_size(argument)
    session.login.allocated = size
    rules = file_rules(session.login.user)
    if rules is None or size is None:
        return None
    reason = rules.size_refusal(size)
    if reason is None:
        return None
    logger.info("session %s: ALLO %d refused: %s", session.id, size, reason)
    return "552", reason


def _allocated_size(argument: str) -> int | None:
    """The byte count of ``ALLO <size> [R <record size>]``; None when there is none."""
    first = argument.strip().split(" ", 1)[0]
    if not first.isdigit() or not first.isascii():
        return None
    return int(first)


def guard_uploads(session: Session, path_io: Any, user: Any) -> Any:
    """The session's path I/O with uploads checked against ``user``'s file rules.

    Only this session's object changes: its ``open`` hands out :class:`GuardedUpload`
    for writing modes.  The class, the shared state and every other method stay the
    backend's own, so whatever tells storage apart (the writer registry's keys, the
    backend's capabilities) sees the same storage as for any other session.  A path
    I/O object shared by several sessions (a factory returning one instance) is
    copied first, so the guard stays this session's.
    """
    rules = file_rules(user)
    if rules is None:
        return path_io
    if getattr(path_io, "connection", None) is not session:
        path_io = copy.copy(path_io)
    opener: Callable[..., Any] = type(path_io).open
    # weak references: the object would otherwise hold itself (and the session) in a
    # cycle, and a closed session would wait for the cycle collector to be freed
    storage = weakref.ref(path_io)
    owner = weakref.ref(session)

    def open(path: Any, mode: str = "rb") -> Any:  # noqa: A001 - the path I/O's own name
        path_io, session = storage(), owner()
        if path_io is None or session is None:
            raise RuntimeError("the session this storage belonged to is gone")
        opened = opener(path_io, path, mode)
        if not _WRITE_MODES & set(mode):
            return opened
        return GuardedUpload(opened, session=session, path_io=path_io, path=path,
                             mode=mode, rules=rules)

    path_io.open = open
    return path_io


def _too_large(reason: str) -> PathIOError:
    """The failure a write past the limit raises: mapped to 552 like a full disk's EFBIG."""
    cause = OSError(errno.EFBIG, reason.removeprefix("exceeded storage allocation: "))
    try:
        raise cause
    except OSError:
        return PathIOError(reason, reason=sys.exc_info())


def _name_refused(reason: str) -> PathIOError:
    cause = OSError(errno.EINVAL, reason)
    try:
        raise cause
    except OSError:
        return PathIOError(reason, reason=sys.exc_info())


class GuardedUpload:
    """A file opened for an upload, as the transfer sees it: the backend's own opened
    file, with the account's rules checked at open and its bytes counted as written.

    It behaves as the object it wraps (awaitable, an async context that commits on
    success and rolls back on failure, ``write``/``seek``/``immediate_writer``...).
    """

    def __init__(
        self, opened: Any, *, session: Session, path_io: Any, path: Any, mode: str,
        rules: FileRules,
    ) -> None:
        self._opened = opened
        self._session = session
        self._path_io = path_io
        self._path = path
        self._mode = mode
        self._rules = rules
        self._limit = rules.max_file_size
        self._ready = False
        #: where the next byte goes (the file's size so far, for an append)
        self.position = 0

    # -- opening --------------------------------------------------------------------------
    def __await__(self) -> Generator[Any, None, GuardedUpload]:
        return self._open().__await__()

    async def __aenter__(self) -> GuardedUpload:
        return await self._open()

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        await self._opened.__aexit__(exc_type, exc, tb)

    async def _open(self) -> GuardedUpload:
        if not self._ready:
            await self._check()
            await self._opened
            self._ready = True
        return self

    async def _check(self) -> None:
        session = self._session
        announced, session.login.allocated = session.login.allocated, None
        virtual = self._virtual()
        if virtual is not None:
            reason = self._rules.creation_refusal(virtual, is_dir=False)
            if reason is not None:
                logger.info("session %s: upload to %s refused: %s", session.id, virtual, reason)
                raise _name_refused(reason)
        if self._limit is None:
            return
        if announced is not None:
            reason = self._rules.size_refusal(announced)
            if reason is not None:
                logger.info("session %s: upload of %d bytes (ALLO) refused: %s",
                            session.id, announced, reason)
                raise _too_large(reason)
        if "a" in self._mode:
            self.position = await self._current_size()

    async def _current_size(self) -> int:
        """The size an append starts from (0 for a file that does not exist yet)."""
        try:
            stats = await self._path_io.stat(self._path)
        except PathIOError as exc:
            if isinstance(exc.cause, FileNotFoundError):
                return 0
            raise
        return int(getattr(stats, "st_size", 0) or 0)

    def _virtual(self) -> PurePosixPath | None:
        try:
            return self._session.virtual_of(self._path)
        except (ValueError, TypeError, AttributeError):
            return None

    # -- writing --------------------------------------------------------------------------
    def _count(self, size: int) -> None:
        end = self.position + size
        limit = self._limit
        if limit is not None and end > limit:
            reason = self._rules.size_refusal(end)
            assert reason is not None
            logger.info("session %s: upload to %s cut off: %s", self._session.id,
                        self._virtual(), reason)
            raise _too_large(reason)
        self.position = end

    async def write(self, data: Any) -> None:
        self._count(len(data))
        await self._opened.write(data)

    def immediate_writer(self) -> Callable[[Any], None] | None:
        inner: Callable[[Any], None] | None = self._opened.immediate_writer()
        if inner is None or self._limit is None:
            return inner
        count = self._count

        def write_now(data: Any) -> None:
            count(len(data))
            inner(data)

        return write_now

    async def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        result: Any = await self._opened.seek(offset, whence)
        if isinstance(result, int):
            self.position = result
        elif whence == io.SEEK_SET:
            self.position = offset
        return int(self.position)

    # -- the rest is the opened file's own -----------------------------------------------------
    @property
    def raw_file(self) -> Any:
        return self._opened.raw_file

    async def close(self) -> None:
        await self._opened.close()

    async def abort(self) -> None:
        await self._opened.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._opened, name)
