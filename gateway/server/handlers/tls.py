"""AUTH TLS, PBSZ, PROT: explicit FTPS on the server side (RFC 4217)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from gateway.server.handlers.base import HandlerBase
from gateway.server.session import Session

__all__ = ("TlsCommands",)

logger = logging.getLogger("gateway.server")


class TlsCommands(HandlerBase):
    async def auth(self, connection: Session, rest: str) -> bool:
        mechanism = rest.strip().upper()
        context = self.tls_context
        if context is None:
            connection.response("502", "TLS is not configured on this server")
            return True
        if mechanism not in ("TLS", "TLS-C", "SSL", "TLS-P"):
            connection.response("504", f"AUTH {mechanism} not supported; use AUTH TLS")
            return True
        if connection.tls:
            connection.response("503", "already using TLS")
            return True
        # Stop reading until the TLS layer takes over: the ClientHello the client
        # sends on our 234 must stay in the socket for start_tls (read into the
        # clear-text buffer it would be lost, and the handshake would hang).
        transport: Any = connection.writer.transport  # asyncio's or uvloop's
        transport.pause_reading()
        # Anything the client pipelined after AUTH arrived in clear text and must
        # never be executed as if it had come through TLS.
        _discard_buffered(connection.reader)
        connection.response("234", f"AUTH {mechanism} successful")
        await connection.flushed()
        try:
            async with asyncio.timeout(self.tls_handshake_timeout):
                await connection.writer.start_tls(context)
        except (OSError, TimeoutError, ConnectionError) as exc:
            logger.info("session %s: TLS handshake failed: %s", connection.id, exc)
            connection.closing = True
            return False
        connection.tls = True
        if connection.user is not None and not connection.logged:
            await self.end_login(connection)
        if mechanism in ("SSL", "TLS-P"):
            connection.data.protection = "P"
        return True

    async def pbsz(self, connection: Session, rest: str) -> bool:
        strict = connection.settings.strict_rfc
        if strict and not rest.strip():
            connection.response("501", "PBSZ needs an argument")
            return True
        if not connection.tls:
            if strict:
                connection.response("503", "PBSZ needs a protected control connection (AUTH TLS)")
            else:  # aioftp accepts it; nothing is protected
                connection.response("200", "PBSZ=0; the control connection is not protected (no AUTH TLS)")
            return True
        if strict and not rest.strip().isdigit():
            connection.response("501", "PBSZ needs a number")
            return True
        connection.data.pbsz = 0
        connection.response("200", "PBSZ=0")
        return True

    async def prot(self, connection: Session, rest: str) -> bool:
        level = rest.strip().upper()
        strict = connection.settings.strict_rfc
        if not connection.tls:
            if strict:
                connection.response("503", "PROT needs a protected control connection (AUTH TLS)")
            elif level in ("P", "C"):
                # aioftp's 200 to PROT P, but never a claim of protection: without TLS
                # on the control connection there is none, and data connections stay
                # clear (as aioftp's do)
                connection.response("200", f"PROT {level}: data connections are clear (no AUTH TLS)")
            else:
                connection.response("502", f"PROT {level} not supported")
            return True
        if strict and connection.data.pbsz is None and not connection.implicit_tls:
            connection.response("503", "PROT needs PBSZ first")
            return True
        if level == "P":
            connection.data.protection = "P"
            connection.response("200", "data connections will be protected")
        elif level == "C":
            if self.require_tls:
                connection.response("534", "clear data connections are refused by policy")
                return True
            connection.data.protection = "C"
            await connection.data.match_protection()
            connection.response("200", "data connections will be clear")
        elif not strict:
            connection.response("502", f"PROT {level} not supported")
        elif level in ("S", "E"):
            connection.response("536", f"PROT {level} not supported")
        else:
            connection.response("504", f"unknown protection level {level!r}")
        return True


def _discard_buffered(reader: asyncio.StreamReader) -> None:
    buffer = getattr(reader, "_buffer", None)
    if buffer:
        logger.warning("discarding %d bytes pipelined before the TLS handshake", len(buffer))
        buffer.clear()
