"""Login and idle timeouts: one timer per session, not one timeout per command."""

from __future__ import annotations

import logging

from gateway.server.session import Session

__all__ = ("arm_watchdog", "restart_watchdog", "stop_watchdog")

logger = logging.getLogger("gateway.server")


def _deadline(session: Session) -> float | None:
    if session.extra_workers:
        return None  # a transfer is running: the data connection's timeouts apply
    settings = session.settings
    deadline = None
    if settings.idle_timeout:
        deadline = session.last_activity + settings.idle_timeout
    if not session.login.logged and settings.login_timeout:
        login_deadline = session.login_started + settings.login_timeout
        deadline = login_deadline if deadline is None else min(deadline, login_deadline)
    return deadline


def arm_watchdog(session: Session) -> None:
    """Arm the session's timer for its next deadline (none when no timeout is set)."""
    settings = session.settings
    deadline = _deadline(session)
    if deadline is None:
        if not (settings.idle_timeout or settings.login_timeout):
            return
        # a transfer is running: look again later
        deadline = session.loop.time() + (settings.idle_timeout or settings.login_timeout or 60.0)
    session.watchdog = session.loop.call_at(deadline, _fired, session)


def restart_watchdog(session: Session) -> None:
    """Re-arm after the deadline moved earlier (a logged-in client sent USER, REIN)."""
    stop_watchdog(session)
    arm_watchdog(session)


def stop_watchdog(session: Session) -> None:
    if session.watchdog is not None:
        session.watchdog.cancel()
        session.watchdog = None


def _fired(session: Session) -> None:
    session.watchdog = None
    if session.closing:
        return
    deadline = _deadline(session)
    if deadline is not None and session.loop.time() >= deadline:
        logger.info("session %s: timed out", session.id)
        session.timed_out = True
        session.response("421", "timeout: closing control connection")
        session.writer.close()  # flushes the reply, then the read loop sees EOF
        return
    arm_watchdog(session)
