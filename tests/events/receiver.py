"""A real HTTP receiver for webhook tests: stdlib http.server in a thread.

Each request takes the next planned behaviour ("slow": answer after ``slow_for``
seconds, "error": 500, "refuse": 403 with ``refuse_text``), then "ok" (200) for good.
Every request is recorded with its event id, body and whether its signature verified.
It can be created before it listens (``Receiver(port=...)`` then ``start()``), so the
gateway first finds nobody there.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from gateway.events.signing import EVENT_ID_HEADER, SIGNATURE_HEADER, verify

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class Request:
    event_id: str
    body: bytes
    verified: bool
    answered: int


class Receiver:
    def __init__(self, secret: str = "", *, port: int | None = None, plan: list[str] | None = None,
                 slow_for: float = 2.0, refuse_text: str = "refused by the receiver") -> None:
        self.secret = secret
        self.port = port or free_port()
        self.plan = list(plan or [])
        self.slow_for = slow_for
        self.refuse_text = refuse_text
        self.requests: list[Request] = []
        self._lock = threading.Condition()
        self._closing = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/events"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    behaviour = receiver.plan.pop(0) if receiver.plan else "ok"
                status = {"ok": 200, "slow": 200, "error": 500, "refuse": 403}[behaviour]
                ok = verify(receiver.secret, body, self.headers.get(SIGNATURE_HEADER)) if receiver.secret else True
                with receiver._lock:
                    receiver.requests.append(Request(self.headers.get(EVENT_ID_HEADER, ""), body, ok, status))
                    receiver._lock.notify_all()
                if behaviour == "slow":
                    receiver._closing.wait(receiver.slow_for)  # slower than the sender waits
                text = receiver.refuse_text if behaviour == "refuse" else "thanks"
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(text.encode())))
                    self.end_headers()
                    self.wfile.write(text.encode())
                except OSError:
                    pass  # the sender gave up waiting

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((HOST, self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def answered_ok(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.answered == 200]

    def wait_for(self, condition: Callable[[list[Request]], bool], timeout: float = 30.0) -> None:
        """Until ``condition(requests)`` holds; fails with what arrived."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not condition(list(self.requests)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"receiver: condition not met; got {self.requests!r}")
                self._lock.wait(min(remaining, 0.5))
