"""Running ``gateway serve``: start every listener, serve, shut down gracefully.

SIGTERM or SIGINT stops accepting and gives running transfers ``shutdown_grace``
seconds to finish (each session then gets 421); a second signal skips the rest of
the grace period.

Before the listeners open, what killed uploads left in local storage is cleaned up
(``gateway.service.temporaries``), for a bounded time; the rest goes on in the
background while the server runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import signal
from collections.abc import Callable, Sequence
from typing import Any

from gateway.config.model import Settings
from gateway.observe.health import Health
from gateway.observe.logs import TransferLogger
from gateway.server.events import EventFanout, ServerEvents
from gateway.service.build import StartError, build_servers, build_user_manager
from gateway.service.openfiles import OpenFilesWatch, announce_limit, raise_open_files_limit
from gateway.service.temporaries import recover_at_start

__all__ = ("Running", "serve")

logger = logging.getLogger("gateway.service")


class Running:
    """What a started service exposes (to tests and to the command line)."""

    def __init__(self) -> None:
        self.addresses: list[tuple[str, int, str]] = []  # host, port, tls mode
        self.metrics_port: int | None = None
        self.health = Health()  # what /healthz and /readyz report
        self.stop = asyncio.Event()
        self.force = asyncio.Event()


def _events(settings: Settings) -> tuple[EventFanout, list[Any], Any]:
    """(every event listener as one, what to close at the end, the metrics or None)."""
    listeners: list[ServerEvents] = [TransferLogger()]
    closers: list[Any] = []
    metrics = None
    if settings.logging.xferlog is not None:
        from gateway.observe.xferlog import XferLog

        try:
            xferlog = XferLog(settings.logging.xferlog)
        except OSError as exc:
            raise StartError(
                f"[logging] xferlog: cannot write {settings.logging.xferlog}: {exc.strerror or exc}"
            ) from None
        listeners.append(xferlog)
        closers.append(xferlog)
    if settings.metrics.listen is not None:
        from gateway.observe.metrics import Metrics

        metrics = Metrics()
        listeners.append(metrics)
        closers.append(metrics)
    return EventFanout(*listeners), closers, metrics


def _example_root(storage_root: str) -> str:
    if "://" in storage_root:
        return f"{storage_root.rstrip('/')}/alice"
    return os.path.join(os.path.abspath(storage_root), "alice")


def _absolute_sqlite(url: Any) -> Any:
    """A SQLite URL naming its file absolutely, so it means the same from any directory."""
    name = url.database
    if url.get_backend_name() != "sqlite" or not name or name == ":memory:" or name.startswith("file:"):
        return url
    return url.set(database=os.path.abspath(name))


async def _accounts_hint(manager: Any, storage_root: str,
                         command: Sequence[str] = ("gateway",)) -> str | None:
    """How to add a user, when the database has none yet.

    The command is meant to run as printed, from any directory: ``command`` is how this
    process's ``gateway`` can be run again, and a relative SQLite file is made absolute.
    """
    engine = getattr(manager, "engine", None)
    if engine is None:
        return None
    from gateway.users.database import admin

    if await admin.list_accounts(engine):
        return None
    url = _absolute_sqlite(engine.url)
    shown = url.render_as_string(hide_password=True)
    argv = [*command, "users", "add", "alice", "--root", _example_root(storage_root),
            "--database-url", shown]
    note = " (put the password in place of ***)" if url.password else ""
    return (
        f"no accounts yet in {shown}; add one with{note}:\n"
        f"    {shlex.join(argv)}\n"
        "(the password is asked for; --password-stdin reads it from standard input)"
    )


async def serve(
    settings: Settings,
    *,
    running: Running | None = None,
    announce: Callable[[str], None] = print,
    install_signals: bool = True,
    reload: Callable[[], Settings] | None = None,
    admin_command: Sequence[str] = ("gateway",),
) -> None:
    """Serve until SIGTERM/SIGINT (or ``running.stop`` is set), then shut down.

    With ``reload`` (how to load the configuration again), SIGHUP applies a renewed
    certificate and changed settings in place (``gateway.service.reload``).
    ``admin_command`` is how the hint for a first account runs ``gateway``.
    """
    running = running or Running()
    announce_limit(raise_open_files_limit())  # sessions count against it: see openfiles
    events, closers, metrics = _events(settings)
    manager = build_user_manager(settings)
    delivery = None  # the event outbox and its worker, with [events] on
    if settings.events.active:
        from gateway.events.service import EventService

        delivery = EventService(settings, manager, metrics.registry if metrics is not None else None)
        events.listeners.extend(delivery.listeners)
    servers = build_servers(settings, manager, events)
    connect = getattr(manager, "connect", None)
    started: list[Any] = []
    cleanup: asyncio.Future[None] | None = None
    ticking: asyncio.Future[None] | None = None
    watching: asyncio.Future[None] | None = None
    loop = asyncio.get_running_loop()
    in_force = [settings]  # what SIGHUP last applied
    if install_signals:
        # before anything is announced: whoever sees "serving" may already signal
        def stop() -> None:
            if running.stop.is_set():
                running.force.set()
            running.stop.set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop)
        if reload is not None:

            def hangup() -> None:
                from gateway.service.reload import apply_reload

                try:
                    in_force[0] = apply_reload(in_force[0], reload, started, manager)
                except Exception:
                    logger.exception("reload failed; the running configuration stays")

            loop.add_signal_handler(signal.SIGHUP, hangup)
    try:
        watching = asyncio.ensure_future(OpenFilesWatch().run())
        if connect is not None:
            try:
                await connect()
            except Exception as exc:
                from gateway.users.database.diagnose import explain

                raise StartError(explain(exc, getattr(manager, "url", None))) from None
            hint = await _accounts_hint(manager, settings.storage.root, admin_command)
            if hint:
                announce(hint)
        # an append cut off by a kill -9 is rolled back before clients can see it
        cleanup = await recover_at_start(settings, manager)
        if delivery is not None:
            try:
                await delivery.start()
            except Exception as exc:
                from gateway.users.database.diagnose import explain

                raise StartError(f"[events] outbox: {explain(exc, delivery.url)}") from None
        for server, listener in servers:
            try:
                await server.start(listener.host, listener.port)
            except OSError as exc:
                raise StartError(f"cannot listen on {listener.host}:{listener.port}: {exc.strerror or exc}") from None
            started.append(server)
            mode = "implicit TLS" if server.ssl else ("explicit TLS" if server.tls_context else "plain")
            running.addresses.append((str(server.server_host), int(server.server_port or 0), mode))
            behind = ""
            if server.proxy_policy is not None:
                behind = f"; behind a load balancer: {server.proxy_policy.describe()}"
            announce(f"gateway: serving FTP on {server.server_host}:{server.server_port} ({mode}){behind}")
        if metrics is not None and settings.metrics.listen is not None:
            host, port = settings.metrics.listen
            from prometheus_client import make_wsgi_app

            from gateway.observe.health import serve_endpoint

            try:
                endpoint = serve_endpoint(host, port, running.health, make_wsgi_app(metrics.registry))
            except OSError as exc:
                raise StartError(f"[metrics] listen {host}:{port}: {exc.strerror or exc}") from None
            closers.append(endpoint)
            running.metrics_port = endpoint.port
            ticking = asyncio.ensure_future(running.health.keep_ticking())
            announce(f"gateway: metrics on http://{host}:{running.metrics_port}/metrics"
                     " (probes: /healthz, /readyz)")
        if settings.run_as is not None:
            from gateway.service.privileges import drop_privileges

            user, group = settings.run_as
            try:
                drop_privileges(user, group)
            except OSError as exc:
                raise StartError(
                    f"[server] run_as: cannot switch to {user!r} ({exc.strerror or exc}); "
                    "start as root to bind the ports and switch, or leave run_as out"
                ) from None
            announce(f"gateway: running as {user}" + (f":{group}" if group else ""))
        running.health.ready()
        await running.stop.wait()
        # /readyz answers 503 from here on: balancers stop sending new clients
        running.health.drain()
        grace = in_force[0].shutdown_grace
        logger.info("stopping: transfers get %.0f s to finish", grace)
        shutdowns = asyncio.gather(*(s.shutdown(grace) for s in started))
        forced = asyncio.ensure_future(running.force.wait())
        waiting: list[asyncio.Future[Any]] = [shutdowns, forced]
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if forced in done and not shutdowns.done():
            logger.warning("second signal: closing every session now")
            await asyncio.gather(*(s.close() for s in started))
            await shutdowns
        forced.cancel()
    finally:
        if watching is not None:
            watching.cancel()
        if ticking is not None:
            ticking.cancel()
        if cleanup is not None and not cleanup.done():
            cleanup.cancel()
            await asyncio.wait([cleanup])
        if install_signals:
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(signum)
        for server in started:
            if server.server is not None and server.server.is_serving():
                await server.close()
        if delivery is not None:  # before the accounts engine it may share is closed
            with contextlib.suppress(Exception):
                await delivery.stop()
        close = getattr(manager, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await close()
        for closer in closers:
            with contextlib.suppress(Exception):
                closer.close()
        logger.info("stopped")
