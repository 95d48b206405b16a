"""Logging for ``gateway serve``: text or JSON lines, with the session id as a field.

Server messages about a session start with ``session <id>:``; the JSON formatter
lifts that id into its own ``session`` field so log tools can group by it.
Passwords never reach the logs: PASS is logged as ``PASS ****`` by the server.
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

__all__ = ("JsonFormatter", "TransferLogger", "configure_logging")

_TEXT_FORMAT = "%(asctime)s %(levelname)s [%(name)s] %(message)s"


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
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str = "info", fmt: str = "text", file: Path | None = None) -> None:
    """Send ``gateway.*`` and ``backends.*`` logs to ``file`` (or stderr) at ``level``."""
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.handlers.WatchedFileHandler(file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(_TEXT_FORMAT))
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
        self.logger.info(
            "session %s: %s %s %d bytes in %.3f s (%.1f MiB/s) %s",
            session.id, record.command, record.path, record.size, seconds,
            rate, record.status,
            extra={"transfer": {
                "command": record.command, "path": record.path, "bytes": record.size,
                "seconds": round(seconds, 6), "status": record.status, "user": record.login,
            }},
        )
