"""Zero-copy sends from a local file to a plain TCP data connection."""

from __future__ import annotations

import asyncio
import os
from typing import Any

__all__ = ("sendfile",)


async def sendfile(writer: asyncio.StreamWriter, file: Any, offset: int, timeout: float | None) -> int:
    """Send ``file`` from ``offset`` to the end over a plain TCP writer, zero-copy.

    Works on any event loop: it waits for writability on a duplicate of the
    socket's descriptor and calls ``os.sendfile`` until the kernel says EOF.  The
    writer must have nothing buffered; the caller drains it first.
    """
    loop = asyncio.get_running_loop()
    sock = writer.get_extra_info("socket")
    in_fd = file.fileno()
    out_fd = os.dup(sock.fileno())
    sent_total = 0
    chunk = 16 * 1024 * 1024
    try:
        while True:
            try:
                sent = os.sendfile(out_fd, in_fd, offset, chunk)
            except BlockingIOError:
                await _writable(loop, out_fd, timeout)
                continue
            except InterruptedError:
                continue
            if sent == 0:
                return sent_total
            offset += sent
            sent_total += sent
    finally:
        os.close(out_fd)


async def _writable(loop: asyncio.AbstractEventLoop, fd: int, timeout: float | None) -> None:
    waiter = loop.create_future()

    def ready() -> None:
        if not waiter.done():
            waiter.set_result(None)

    loop.add_writer(fd, ready)
    try:
        if timeout is None:
            await waiter
        else:
            async with asyncio.timeout(timeout):
                await waiter
    finally:
        loop.remove_writer(fd)
