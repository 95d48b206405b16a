"""Login and idle timeouts: one timer per session, not one timeout per command."""

from __future__ import annotations

import logging
from typing import Any

__all__ = ("SessionWatchdog",)

logger = logging.getLogger("gateway.server")


class SessionWatchdog:
    """Server methods arming each session's timer (``login_timeout``, ``idle_timeout``)."""

    idle_timeout: float | None
    login_timeout: float | None

    def _watchdog_deadline(self, session: Any) -> float | None:
        if session.extra_workers:
            return None  # a transfer is running: its own timeouts apply
        deadline = None
        if self.idle_timeout:
            deadline = session.last_activity + self.idle_timeout
        if not session.logged and self.login_timeout:
            login_deadline = session.login_started + self.login_timeout
            deadline = login_deadline if deadline is None else min(deadline, login_deadline)
        return deadline

    def restart_watchdog(self, session: Any) -> None:
        """Re-arm after the deadline moved earlier (a logged-in client sent USER)."""
        if session.watchdog is not None:
            session.watchdog.cancel()
        self._arm_watchdog(session)

    def _arm_watchdog(self, session: Any) -> None:
        deadline = self._watchdog_deadline(session)
        if deadline is None:
            if not (self.idle_timeout or self.login_timeout):
                return
            deadline = session.loop.time() + (self.idle_timeout or self.login_timeout or 60.0)
        session.watchdog = session.loop.call_at(deadline, self._watchdog_fired, session)

    def _watchdog_fired(self, session: Any) -> None:
        session.watchdog = None
        if session.closing:
            return
        deadline = self._watchdog_deadline(session)
        if deadline is not None and session.loop.time() >= deadline:
            logger.info("session %s: timed out", session.id)
            session.timed_out = True
            session.response("421", "timeout: closing control connection")
            session.writer.close()  # flushes the reply, then the read loop sees EOF
            return
        self._arm_watchdog(session)
