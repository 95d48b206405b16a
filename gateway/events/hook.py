"""The pre-upload hook: an HTTP endpoint or a command asked before an upload opens
storage, so a refused upload never writes a byte.

It gets the event as it would be sent ("kind": "upload_starting", the size ALLO
announced if any).  HTTP 2xx or exit 0 allows the upload; an HTTP error status or a
non-zero exit refuses it with the first line of the body or output as the reply text
(see ``gateway.events.verdict`` for the code).  A hook that cannot be asked (not
reachable, too slow) refuses with 451, unless ``fail_open`` lets the upload go on.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from gateway.events.actions import WebhookAction, event_environment, run_command
from gateway.events.payload import encode, event_payload
from gateway.events.verdict import refusal
from gateway.server.events import Operation, ServerEvents, UploadRefused

__all__ = ("PreUploadHook",)

logger = logging.getLogger("gateway.events")

UNAVAILABLE = "upload refused: the pre-upload check is unavailable; try again later"


class PreUploadHook(ServerEvents):
    def __init__(
        self,
        *,
        node: str,
        url: str | None = None,
        command: tuple[str, ...] = (),
        secret: str | None = None,
        timeout: float = 5.0,
        fail_open: bool = False,
        headers: dict[str, str] | None = None,
        refuse_code: str = "550",
    ) -> None:
        if not url and not command:
            raise ValueError("a pre-upload hook needs a url or a command")
        self.node = node
        self.command = command
        self.timeout = timeout
        self.fail_open = fail_open
        self.refuse_code = refuse_code
        self._http = WebhookAction("pre_upload", url, secret=secret, timeout=timeout,
                                   headers=headers) if url else None

    def body(self, operation: Operation) -> tuple[str, bytes]:
        event_id = str(uuid.uuid4())
        payload = event_payload(operation, event_id=event_id, node=self.node)
        payload["kind"] = "upload_starting"
        return event_id, encode(payload)

    async def upload_starting(self, session: Any, operation: Operation) -> None:
        event_id, body = self.body(operation)
        if self._http is not None:
            try:
                status, text = await self._http.post(event_id, body)
            except Exception as exc:
                return self._unavailable(operation, f"{self._http.url}: {type(exc).__name__}: {exc}")
            if 200 <= status < 300:
                return None
            raise UploadRefused(*refusal(text or f"refused (HTTP {status})", self.refuse_code))
        try:
            code, out, _err = await run_command(self.command, body, timeout=self.timeout,
                                                env=event_environment(body))
        except OSError as exc:
            return self._unavailable(operation, f"cannot run {self.command[0]}: {exc.strerror or exc}")
        if code is None:
            return self._unavailable(operation, f"{self.command[0]}: no answer within {self.timeout:g} s")
        if code == 0:
            return None
        raise UploadRefused(*refusal(out or f"refused (exit {code})", self.refuse_code))

    def _unavailable(self, operation: Operation, why: str) -> None:
        if self.fail_open:
            logger.warning("pre-upload check of %s unavailable (%s): allowed (fail_open)",
                           operation.path, why)
            return
        logger.error("pre-upload check of %s unavailable (%s): upload refused", operation.path, why)
        raise UploadRefused("451", UNAVAILABLE)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
