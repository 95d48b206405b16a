"""What a server tells the outside world: sessions, logins, transfers.

The server calls one :class:`ServerEvents` object (``Server.events``) at these points;
logs, the transfer log and metrics are listeners, so the protocol code knows none of
them.  Listener methods must be quick and must not raise: they run on the event loop
inside the session.  :class:`EventFanout` passes each event to several listeners and
keeps one listener's failure from reaching the others or the session.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ("EventFanout", "Operation", "ServerEvents", "TransferRecord", "UploadRefused")

logger = logging.getLogger("gateway.server")


@dataclass
class TransferRecord:
    """One data transfer, filled in as it runs.

    ``direction`` is "o" (outgoing: RETR, listings) or "i" (incoming: STOR, APPE,
    STOU), as the xferlog format spells it; ``status`` is "complete", "aborted"
    (ABOR, client gone) or "failed" (storage error).  ``checksums`` (algorithm key ->
    lowercase hex, e.g. ``{"sha256": ..., "crc32": ...}``) are those of the file a
    complete upload stored, when it wrote the whole file (not APPE or a resume) with
    ``upload_checksums`` on; empty otherwise.
    """

    command: str
    direction: str
    path: str
    login: str | None
    client_host: str
    binary: bool = True
    size: int = 0
    started: float = field(default_factory=time.time)
    finished: float | None = None
    status: str = "running"
    backend: str = ""
    checksums: dict[str, str] = field(default_factory=dict)
    #: the path in storage (as text), when the transfer is of a file
    real: str = ""

    @property
    def sha256(self) -> str | None:
        """The stored file's SHA-256 (hex), when the upload computed it."""
        return self.checksums.get("sha256")

    @property
    def seconds(self) -> float:
        end = self.finished if self.finished is not None else time.time()
        return max(end - self.started, 0.0)

    def finish(self, status: str) -> None:
        self.finished = time.time()
        self.status = status


@dataclass
class Operation:
    """One thing a client did that changed or read storage, or a login, as durable
    listeners (an event outbox, usage accounting) see it.

    ``kind`` is one of "upload", "download", "delete", "rename", "mkdir", "rmdir",
    "login", "login_failed".  ``path`` is the virtual path (for a rename the source;
    ``target`` the destination), ``real`` the path in storage and ``storage_root``
    the account's storage root (a URL such as ``s3://bucket/prefix``, or None for
    the server's own path I/O).  ``record`` is the transfer's record for uploads and
    downloads (size, checksums, duration).
    """

    kind: str
    session_id: int
    login: str | None
    client_host: str
    path: str | None = None
    target: str | None = None
    real: str | None = None
    target_real: str | None = None
    storage_root: str | None = None
    backend: str = ""
    size: int | None = None
    record: TransferRecord | None = None
    time: float = field(default_factory=time.time)


class UploadRefused(Exception):
    """Raised by :meth:`ServerEvents.upload_starting`: the upload is refused, before
    any data flows, with this FTP reply (``code`` 4xx/5xx and ``text``)."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text


class ServerEvents:
    """Does nothing; subclasses override what they listen to.

    The synchronous methods are told after the fact and must be quick.  The two
    coroutines are awaited inside the command: :meth:`completed` after an operation
    succeeded and *before* its success reply is sent (a durable listener writes it
    down there, so a client that saw 226/250 knows it is recorded), and
    :meth:`upload_starting` before an upload opens storage (it may refuse it).
    """

    def session_opened(self, session: Any) -> None:
        """A control connection was accepted."""

    def session_closed(self, session: Any) -> None:
        """A control connection ended, for whatever reason."""

    def login(self, session: Any, login: str | None, ok: bool) -> None:
        """A login attempt ended: ``ok`` True when the session is now logged in."""

    def transfer(self, session: Any, record: TransferRecord) -> None:
        """A data transfer ended (``record.status`` says how)."""

    async def completed(self, session: Any, operation: Operation) -> None:
        """``operation`` succeeded; its reply is sent when this returns.  A failure
        raised here is logged and does not change the reply."""

    async def upload_starting(self, session: Any, operation: Operation) -> None:
        """An upload (``operation.kind`` "upload", ``size`` the size ALLO announced
        or None) is about to open storage; raise :class:`UploadRefused` to refuse it."""


class EventFanout(ServerEvents):
    """Every event to every listener, in order; a failing listener is logged and skipped."""

    def __init__(self, *listeners: ServerEvents) -> None:
        self.listeners = list(listeners)

    def _each(self, name: str, *args: Any) -> None:
        for listener in self.listeners:
            try:
                getattr(listener, name)(*args)
            except Exception:
                logger.exception("event listener %r failed on %s", listener, name)

    def session_opened(self, session: Any) -> None:
        self._each("session_opened", session)

    def session_closed(self, session: Any) -> None:
        self._each("session_closed", session)

    def login(self, session: Any, login: str | None, ok: bool) -> None:
        self._each("login", session, login, ok)

    def transfer(self, session: Any, record: TransferRecord) -> None:
        self._each("transfer", session, record)

    async def completed(self, session: Any, operation: Operation) -> None:
        for listener in self.listeners:
            try:
                await listener.completed(session, operation)
            except Exception:
                logger.exception("event listener %r failed on %s", listener, operation.kind)

    async def upload_starting(self, session: Any, operation: Operation) -> None:
        for listener in self.listeners:
            await listener.upload_starting(session, operation)  # a refusal goes up
