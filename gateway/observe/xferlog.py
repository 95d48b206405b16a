"""The transfer log in the xferlog format (wu-ftpd, vsftpd, proftpd), one line per
transfer, so existing FTP log tools read it.

Fields: current-time transfer-time remote-host file-size filename transfer-type
special-action-flag direction access-mode username service-name
authentication-method authenticated-user-id completion-status, then, for a complete
upload whose checksum was computed as it streamed (``upload_checksums``), one more:
``sha256:<hex>``.  Tools that read the standard fields by position are unaffected.
"""

from __future__ import annotations

import logging
import logging.handlers
import time
from pathlib import Path
from typing import Any

from gateway.observe.logs import TextFormatter, escape_log_text
from gateway.server.events import ServerEvents, TransferRecord

__all__ = ("XferLog", "format_xferlog_line")

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_ANONYMOUS = frozenset({"anonymous", "ftp"})


def _ctime(moment: float) -> str:
    """``Sun Nov 22 07:27:36 2026`` in local time, whatever the process locale."""
    t = time.localtime(moment)
    return (
        f"{_DAYS[t.tm_wday]} {_MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {t.tm_year}"
    )


def _field(text: str) -> str:
    """One field, on one line, whatever the name's bytes: whitespace would split the
    field, so each blank becomes ``_`` (as other servers do); CR, LF and anything else
    not printable becomes an escape (``\\r``, ``\\xe9`` for a byte that was not UTF-8),
    so the line can always be written and no name can forge another transfer's line."""
    if text.isprintable() and not any(c.isspace() for c in text):
        return text or "-"
    return "".join(("_" if c.isspace() else c) if c.isprintable() else escape_log_text(c) for c in text) or "-"


def format_xferlog_line(record: TransferRecord) -> str:
    finished = record.finished if record.finished is not None else time.time()
    login = record.login or "anonymous"
    access = "a" if login in _ANONYMOUS else "r"
    fields = [
        _ctime(finished),
        str(max(round(record.seconds), 0)),
        _field(record.client_host),
        str(record.size),
        _field(record.path),
        "b" if record.binary else "a",
        "_",
        record.direction,
        access,
        _field(login),
        "ftp",
        "0",
        "*",
        "c" if record.status == "complete" else "i",
    ]
    if record.status == "complete" and record.sha256:
        fields.append(f"sha256:{record.sha256}")
    return " ".join(fields)


class XferLog(ServerEvents):
    """Appends a line per transfer to ``path``; reopened when logrotate moves it."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.logger = logging.getLogger(f"gateway.xferlog.{id(self)}")
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        self.handler = logging.handlers.WatchedFileHandler(path, encoding="utf-8", errors="backslashreplace")
        # fields are escaped already; the formatter makes sure of one line per transfer
        self.handler.setFormatter(TextFormatter("%(message)s"))
        self.logger.addHandler(self.handler)

    def transfer(self, session: Any, record: TransferRecord) -> None:
        self.logger.info(format_xferlog_line(record))

    def close(self) -> None:
        self.logger.removeHandler(self.handler)
        self.handler.close()
