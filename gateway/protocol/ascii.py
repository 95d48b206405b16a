"""TYPE A line-ending conversion, as streaming state machines without I/O.

Stored files use LF; the network form is CRLF (RFC 959 NVT-ASCII).  Chunk
boundaries can split a CRLF pair, so each converter carries one byte of state.
"""

from __future__ import annotations

__all__ = ("ToNetwork", "FromNetwork")


class ToNetwork:
    """LF -> CRLF for sending, leaving existing CRLF pairs alone."""

    def __init__(self) -> None:
        self._last_cr = False

    def feed(self, data: bytes) -> bytes:
        if not data:
            return data
        prefix = b""
        if self._last_cr and data[:1] == b"\n":
            # the CR already went out with the previous chunk: complete the pair
            prefix = b"\n"
            data = data[1:]
        self._last_cr = data[-1:] == b"\r"
        return prefix + data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


class FromNetwork:
    """CRLF -> LF for storing; a lone CR is kept as is."""

    def __init__(self) -> None:
        self._pending_cr = False

    def feed(self, data: bytes) -> bytes:
        if self._pending_cr:
            data = b"\r" + data
            self._pending_cr = False
        if data.endswith(b"\r"):
            self._pending_cr = True
            data = data[:-1]
        return data.replace(b"\r\n", b"\n")

    def flush(self) -> bytes:
        if self._pending_cr:
            self._pending_cr = False
            return b"\r"
        return b""
