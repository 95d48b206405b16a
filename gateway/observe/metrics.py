"""Prometheus metrics: sessions, logins, lockouts, bytes and files moved, errors, per backend.

Counters live in their own registry (not prometheus-client's global one), so several
servers in one process (the tests) do not mix their numbers.  The HTTP endpoint is
prometheus-client's own threaded server: scrapes never wait on the event loop.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.core import CounterMetricFamily

from gateway.server.events import ServerEvents, TransferRecord
from gateway.users.database.limiter import LOCKOUTS

__all__ = ("Metrics",)

_DIRECTION = {"i": "in", "o": "out"}


class _S3Errors:
    """Reads the S3 backend's request-error counts at scrape time."""

    def collect(self) -> Any:
        family = CounterMetricFamily(
            "gateway_s3_request_errors", "S3 requests that failed after retries, by kind",
            labels=["kind"],
        )
        try:
            from backends.s3.errors import REQUEST_ERRORS
        except ImportError:  # aiobotocore not installed: no S3 roots
            yield family
            return
        for kind, count in sorted(REQUEST_ERRORS.items()):
            family.add_metric([kind], count)
        yield family


class _Lockouts:
    """Reads the login limiter's lockout counts at scrape time.

    ``scope="network"``: a client network banned after ``ban_after`` failures;
    ``scope="login"``: a login's password logins locked after ``account_lock_after``.
    Counted by the node that decided it: summed over nodes, each lockout once.
    """

    def collect(self) -> Any:
        family = CounterMetricFamily(
            "gateway_login_lockouts", "Client networks banned and logins locked after failed logins",
            labels=["scope"],
        )
        for scope, count in sorted(LOCKOUTS.items()):
            family.add_metric([scope], count)
        yield family


class Metrics(ServerEvents):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.sessions = Gauge("gateway_sessions_open", "Control connections open now", registry=r)
        self.sessions_total = Counter("gateway_sessions", "Control connections accepted", registry=r)
        self.logins = Counter("gateway_logins", "Login attempts by result", ["result"], registry=r)
        self.bytes = Counter(
            "gateway_transfer_bytes", "Bytes moved by data transfers",
            ["direction", "backend"], registry=r,
        )
        self.files = Counter(
            "gateway_transfer_files", "Files transferred, by outcome",
            ["direction", "backend", "status"], registry=r,
        )
        self.errors = Counter(
            "gateway_transfer_errors", "Transfers that failed or were aborted",
            ["direction", "backend"], registry=r,
        )
        r.register(_S3Errors())
        r.register(_Lockouts())
        self._server: Any = None

    # -- events ------------------------------------------------------------------------------
    def session_opened(self, session: Any) -> None:
        self.sessions.inc()
        self.sessions_total.inc()

    def session_closed(self, session: Any) -> None:
        self.sessions.dec()

    def login(self, session: Any, login: str | None, ok: bool) -> None:
        self.logins.labels("ok" if ok else "failed").inc()

    def transfer(self, session: Any, record: TransferRecord) -> None:
        direction = _DIRECTION.get(record.direction, record.direction)
        backend = record.backend or "unknown"
        self.bytes.labels(direction, backend).inc(record.size)
        self.files.labels(direction, backend, record.status).inc()
        if record.status != "complete":
            self.errors.labels(direction, backend).inc()

    # -- the endpoint ---------------------------------------------------------------------------
    def serve(self, host: str, port: int) -> int:
        """Start the /metrics endpoint; returns the port (useful when ``port`` is 0)."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self._server = server
        return int(server.server_address[1])

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
