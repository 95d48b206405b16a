"""Health endpoints for orchestrators and load balancers, served beside ``/metrics``.

``GET /healthz`` (liveness)
    200 while the process runs and its event loop keeps turning (it ticked within
    ``stall_after`` seconds); 503 when the loop is stuck: restart the process.
``GET /readyz`` (readiness)
    200 once every FTP listener is open; 503 ``starting`` before that and 503
    ``draining`` from SIGTERM/SIGINT on, while running transfers finish: a balancer
    sends no new clients, and nothing restarts the process.

Any other path answers the Prometheus text, as the endpoint always did.  The HTTP
server runs in its own threads, so a scrape or a probe never waits on the event loop.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

__all__ = ("HEALTH_PATHS", "Health", "HealthEndpoint", "serve_endpoint")

#: The probe paths and what each tells (Kubernetes: liveness, readiness).
HEALTH_PATHS = {"/healthz": "liveness", "/readyz": "readiness"}

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Health:
    """The state the probes report: starting, ready or draining; the loop's last tick."""

    def __init__(self, stall_after: float = 30.0) -> None:
        self.state = "starting"
        self.stall_after = stall_after
        self._tick = time.monotonic()

    def ready(self) -> None:
        if self.state == "starting":
            self.state = "ready"

    def drain(self) -> None:
        self.state = "draining"

    async def keep_ticking(self, interval: float = 1.0) -> None:
        """Run on the event loop: marks it alive every ``interval`` seconds."""
        while True:
            self._tick = time.monotonic()
            await asyncio.sleep(interval)

    def liveness(self) -> tuple[bool, str]:
        stalled = time.monotonic() - self._tick
        if stalled > self.stall_after:
            return False, f"event loop stalled for {stalled:.0f} s"
        return True, "alive"

    def readiness(self) -> tuple[bool, str]:
        return self.state == "ready", self.state


def health_app(health: Health, fallback: WsgiApp) -> WsgiApp:
    """``/healthz`` and ``/readyz`` from ``health``; every other path to ``fallback``."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path not in HEALTH_PATHS:
            return fallback(environ, start_response)
        ok, text = health.liveness() if path == "/healthz" else health.readiness()
        start_response("200 OK" if ok else "503 Service Unavailable",
                       [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store")])
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [text.encode() + b"\n"]

    return app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        """Probes come every few seconds: no line each."""


class HealthEndpoint:
    """The running HTTP server: its port, and ``close()``."""

    def __init__(self, server: WSGIServer) -> None:
        self._server = server
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(target=server.serve_forever, name="gateway-http", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def serve_endpoint(host: str, port: int, health: Health, fallback: WsgiApp) -> HealthEndpoint:
    """Listen on ``host:port`` (0: any free port) for the probes and ``fallback``'s paths."""
    family = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM)[0][0]

    class _Server(ThreadingMixIn, WSGIServer):
        address_family = family
        daemon_threads = True

    server = make_server(host, port, health_app(health, fallback), _Server, handler_class=_QuietHandler)
    return HealthEndpoint(server)
