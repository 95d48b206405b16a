"""Where events go: an HTTP webhook, or a command run with the event on its stdin.

An action's ``deliver`` never raises: it says whether the receiver took the event
(:class:`Outcome`), and why not.  A webhook took it when it answered 2xx within the
timeout; a command when it exited 0 within the timeout (it is killed after).
Commands run from an argument list, never through a shell.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from dataclasses import dataclass
from typing import Any

from gateway.events.signing import EVENT_ID_HEADER, SIGNATURE_HEADER, sign

__all__ = ("Action", "CommandAction", "Outcome", "WebhookAction", "event_environment", "run_command")


@dataclass(frozen=True)
class Outcome:
    ok: bool
    detail: str = ""


def event_environment(body: bytes) -> dict[str, str]:
    """``GATEWAY_EVENT_*`` variables for a command, from the event's JSON body."""
    try:
        event = json.loads(body)
    except ValueError:
        return {}
    storage = event.get("storage") or {}
    values = {
        "ID": event.get("id"),
        "KIND": event.get("kind"),
        "TIME": event.get("time"),
        "NODE": event.get("node"),
        "ACCOUNT": event.get("account"),
        "PATH": event.get("path"),
        "TARGET": event.get("target"),
        "URL": storage.get("url"),
        "BUCKET": storage.get("bucket"),
        "KEY": storage.get("key"),
        "STORAGE_PATH": storage.get("path"),
        "SIZE": event.get("size"),
        "SHA256": (event.get("checksums") or {}).get("sha256"),
        "CLIENT": (event.get("client") or {}).get("address"),
    }
    return {f"GATEWAY_EVENT_{name}": str(value) for name, value in values.items()
            if value is not None and "\x00" not in str(value)}


class Action:
    """A destination of events, by name."""

    name: str

    async def deliver(self, event_id: str, body: bytes) -> Outcome:
        raise NotImplementedError

    async def close(self) -> None:
        """Give back what the action holds (connections)."""


class WebhookAction(Action):
    """POST the event as JSON; signed with ``secret`` when there is one."""

    def __init__(self, name: str, url: str, *, secret: str | None = None, timeout: float = 10.0,
                 headers: dict[str, str] | None = None) -> None:
        self.name = name
        self.url = url
        self.secret = secret
        self.timeout = timeout
        self.headers = dict(headers or {})
        self._client: Any = None

    def request_headers(self, event_id: str, body: bytes) -> dict[str, str]:
        headers = {**self.headers, "Content-Type": "application/json", EVENT_ID_HEADER: event_id,
                   "User-Agent": "gateway-events"}
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(self.secret, body)
        return headers

    async def post(self, event_id: str, body: bytes) -> tuple[int, str]:
        """(status, the first part of the response body); network errors raise."""
        import aiohttp

        if self._client is None or self._client.closed:
            self._client = aiohttp.ClientSession()
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with self._client.post(self.url, data=body, headers=self.request_headers(event_id, body),
                                     timeout=timeout, allow_redirects=False) as response:
            text = (await response.content.read(4096)).decode("utf-8", "replace")
            return response.status, text

    async def deliver(self, event_id: str, body: bytes) -> Outcome:
        try:
            status, text = await self.post(event_id, body)
        except TimeoutError:
            return Outcome(False, f"{self.url}: no answer within {self.timeout:g} s")
        except Exception as exc:  # aiohttp.ClientError, OSError: the receiver is not there
            return Outcome(False, f"{self.url}: {type(exc).__name__}: {exc}")
        if 200 <= status < 300:
            return Outcome(True, f"HTTP {status}")
        return Outcome(False, f"{self.url}: HTTP {status} {text.strip()[:200]}")

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


async def run_command(argv: tuple[str, ...] | list[str], body: bytes, *, timeout: float,
                      env: dict[str, str] | None = None) -> tuple[int | None, str, str]:
    """(exit status or None when killed at the timeout, stdout, stderr) of ``argv`` fed
    ``body`` on stdin.  OSError (no such program) goes up."""
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await process.communicate(body)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 9)
        with contextlib.suppress(Exception):
            await process.wait()
        return None, "", ""
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 9)
        raise
    return process.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


class CommandAction(Action):
    """Run ``argv`` with the event's JSON on stdin and ``GATEWAY_EVENT_*`` set."""

    def __init__(self, name: str, argv: tuple[str, ...], *, timeout: float = 10.0) -> None:
        self.name = name
        self.argv = argv
        self.timeout = timeout

    async def deliver(self, event_id: str, body: bytes) -> Outcome:
        try:
            code, _out, err = await run_command(self.argv, body, timeout=self.timeout,
                                                env=event_environment(body))
        except OSError as exc:
            return Outcome(False, f"cannot run {self.argv[0]}: {exc.strerror or exc}")
        if code is None:
            return Outcome(False, f"{self.argv[0]}: killed after {self.timeout:g} s")
        if code == 0:
            return Outcome(True, "exit 0")
        last = err.strip().splitlines()[-1] if err.strip() else ""
        return Outcome(False, f"{self.argv[0]}: exit {code} {last[:200]}".rstrip())
