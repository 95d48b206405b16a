"""Logging for ``gateway serve``: text or JSON lines, with the session id as a field.

Server messages about a session start with ``session <id>:``; the JSON formatter
lifts that id into its own ``session`` field so log tools can group by it.
Passwords never reach the logs: PASS is logged as ``PASS ****`` by the server.

Log lines carry what clients send (file names, commands, user names), so a log reader
can trust them only if every event is written, whatever its bytes, and as exactly one
line: both formatters escape (:func:`escape_log_text`) what would break a line or
could not be encoded.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
import time
from pathlib import Path
from typing import Any

from gateway.server.events import ServerEvents, TransferRecord

__all__ = ("JsonFormatter", "TextFormatter", "TransferLogger", "configure_logging", "escape_log_text")

_TEXT_FORMAT = "%(asctime)s %(levelname)s [%(name)s] %(message)s"

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"  # a byte that was not UTF-8 (surrogateescape)
    escaped = _ESCAPES.get(ch)
    if escaped is not None:
        return escaped
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def escape_log_text(text: str) -> str:
    """``text`` as one line that any encoding handler writes: every character that is
    not printable (CR, LF and the other line breaks ``str.splitlines`` knows, control
    and format characters, surrogates from bytes that were not UTF-8) becomes a
    Python-style escape (``\\r``, ``\\x85``, ``\\u2028``; ``\\xe9`` for the raw byte 0xE9).
    """
    if text.isprintable():  # the common case, one pass in C
        return text
    return "".join(ch if ch.isprintable() else _escape_char(ch) for ch in text)


def _escape_for_json(text: str) -> str:
    # JSON itself escapes C0 controls (as \n, \u001b...), so a traceback's newlines
    # still decode as newlines; everything else not printable is escaped here
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch < " " else _escape_char(ch) for ch in text)


def _escape_values(value: Any) -> Any:
    if isinstance(value, str):
        return _escape_for_json(value)
    if isinstance(value, dict):
        return {_escape_for_json(str(k)): _escape_values(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_escape_values(v) for v in value]
    return value


class TextFormatter(logging.Formatter):
    """The text log line, escaped into one line: an exception's traceback included
    (its lines are joined by a visible ``\\n``), since a name in an error message
    could otherwise forge the lines that follow."""

    def format(self, record: logging.LogRecord) -> str:
        return escape_log_text(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, session, exception."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        session = getattr(record, "session", None)
        if session is None and isinstance(record.msg, str) and record.msg.startswith("session %s"):
            if isinstance(record.args, tuple) and record.args:
                session = record.args[0]
                message = message.split(": ", 1)[1] if ": " in message else message
        if session is not None:
            entry["session"] = session
        entry["message"] = message
        for name in ("transfer",):
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        # JSON escapes control characters itself, but writes lone surrogates (no UTF-8
        # encoder accepts them) and U+2028/U+0085 (line breaks to some readers) as
        # they are: escape every string value first, then let JSON quote the rest
        return json.dumps(_escape_values(entry), ensure_ascii=False, default=str)


def configure_logging(level: str = "info", fmt: str = "text", file: Path | None = None) -> None:
    """Send ``gateway.*`` and ``backends.*`` logs to ``file`` (or stderr) at ``level``."""
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        # the formatters leave nothing UTF-8 cannot encode; backslashreplace is the
        # belt to those braces, so a line is never lost to "--- Logging error ---"
        handler: logging.Handler = logging.handlers.WatchedFileHandler(
            file, encoding="utf-8", errors="backslashreplace"
        )
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter(_TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    numeric = getattr(logging, level.upper())
    for name in ("gateway", "backends"):
        logging.getLogger(name).setLevel(numeric)


class TransferLogger(ServerEvents):
    """One log line per finished transfer: command, path, size, duration, outcome."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("gateway.transfer")

    def transfer(self, session: Any, record: TransferRecord) -> None:
        seconds = record.seconds
        rate = record.size / seconds / (1 << 20) if seconds > 0 else 0.0
        fields: dict[str, Any] = {
            "command": record.command, "path": record.path, "bytes": record.size,
            "seconds": round(seconds, 6), "status": record.status, "user": record.login,
        }
        # an upload's checksums (sha256, crc32...), as stored with the file
        fields.update(record.checksums)
        sha256 = f" sha256 {record.sha256}" if record.sha256 else ""
        self.logger.info(
            "session %s: %s %s %d bytes in %.3f s (%.1f MiB/s) %s%s",
            session.id, record.command, record.path, record.size, seconds,
            rate, record.status, sha256,
            extra={"transfer": fields},
        )
