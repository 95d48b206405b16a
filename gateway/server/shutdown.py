"""Graceful shutdown: stop accepting, let transfers finish, then 421 for everyone.

A session between transfers is closed at once; a session in the middle of one is
closed right after its 226, so a file being uploaded lands whole.  What is still
running when the grace period ends is cancelled: uploads roll back (the temporary
file is removed, an S3 multipart upload is aborted), never half-committed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from gateway.server.session import Session

__all__ = ("shutdown_gracefully",)

logger = logging.getLogger("gateway.server")


async def _close_after_transfer(task: asyncio.Task[Any], session: Session) -> None:
    workers = list(session.extra_workers)
    if workers:
        await asyncio.wait(workers)
        # the 226 is queued; let it reach the socket before the 421
        try:
            async with asyncio.timeout(1):
                await session.flushed()
        except (TimeoutError, OSError, RuntimeError):
            pass
    if not task.done():
        task.cancel()


async def shutdown_gracefully(server: Any, grace: float) -> None:
    """See :meth:`gateway.Server.shutdown`."""
    server.shutting_down = True
    if server.server is not None:
        server.server.close()  # no new connections; the open ones go on
    sessions = dict(server.sessions)
    running = sum(1 for session in sessions.values() if session.extra_workers)
    if sessions:
        logger.info(
            "shutting down: %d session(s), %d transfer(s) running, grace %.0f s",
            len(sessions), running, grace,
        )
    closers = [
        asyncio.ensure_future(_close_after_transfer(task, session))
        for task, session in sessions.items()
    ]
    tasks = list(sessions)
    if tasks:
        done, pending = await asyncio.wait(tasks, timeout=grace)
        if pending:
            logger.warning(
                "shutdown: grace period over, cancelling %d session(s) still transferring",
                len(pending),
            )
            for task in pending:
                task.cancel()
            await asyncio.wait(pending)
    for closer in closers:
        closer.cancel()
    if closers:
        await asyncio.wait(closers)
    await server.close()
