"""``gateway serve --check``: is this configuration servable, here and now?

The settings already parsed; this goes on to what only trying can tell: the TLS
certificate loads, the listen addresses are free, the accounts database answers with
the schema this code needs, and every storage root it can find is reachable.  Each
check prints one line; the exit status is 0 only when all passed.

``gateway serve --repair`` (:func:`repair_storage`) cleans up what killed uploads left
in every storage root, as start-up does, and prints each thing it did.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.config.model import Settings
from gateway.service.build import StartError, build_user_manager, tls_context

__all__ = ("check", "repair_storage")

#: Seconds a storage root may take to answer.
STORAGE_TIMEOUT = 15.0


def _listen_free(host: str, port: int) -> str | None:
    if port == 0:
        return None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        return f"cannot resolve {host}: {exc}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


def _writable(path: Any) -> str | None:
    """Whether a log file can be appended to (its directory is created if missing)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        return f"cannot write: {exc.strerror or exc}"
    return None


def _sqlite_writable(database: str) -> str | None:
    """Whether an SQLite file (or the folder it would be made in) can be written."""
    path = Path(database).expanduser()
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    target = path if path.exists() else folder
    if not os.access(target, os.W_OK):
        return f"{target} is not writable"
    return None


async def _outbox_reachable(settings: Settings) -> tuple[str | None, str | None]:
    """(problem or None, what was checked) for an event outbox with its own database;
    (None, None) when it shares the accounts database (checked above).  An SQLite
    file is not created here: its directory must be writable."""
    from gateway.events.service import outbox_url
    from gateway.users.database.urls import normalize_url, safe_url

    url = outbox_url(settings)
    if url is None:
        return None, None
    try:
        parsed = normalize_url(url)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}", url
    shown = safe_url(parsed)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            return None, shown
        return _sqlite_writable(database), shown
    from sqlalchemy import text

    from gateway.users.database.engine import create_engine

    engine = create_engine(parsed)
    try:
        async with asyncio.timeout(STORAGE_TIMEOUT), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except TimeoutError:
        return f"did not answer within {STORAGE_TIMEOUT:.0f} s", shown
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return first, shown
    finally:
        await engine.dispose()
    return None, shown


async def _root_reachable(root: str, options: dict[str, Any] | None) -> str | None:
    from backends.registry import backend_for_root

    try:
        factory, real_root = backend_for_root(root, options)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    path_io = factory()
    try:
        async with asyncio.timeout(STORAGE_TIMEOUT):
            exists = await path_io.exists(real_root)
            if exists:
                # an object store answers "exists" for a root prefix without asking:
                # one listing request proves the endpoint, bucket and credentials
                async for _entry in path_io.list(real_root):
                    break
        if not exists:
            return f"{root} does not exist yet (it is created on first login for local roots)"
        return None
    except TimeoutError:
        return f"{root} did not answer within {STORAGE_TIMEOUT:.0f} s"
    except Exception as exc:
        cause = getattr(exc, "cause", None) or exc
        return f"{root}: {type(cause).__name__}: {cause}"
    finally:
        aclose = getattr(factory, "aclose", None)
        if aclose is not None:
            try:
                await aclose()
            except Exception:
                pass


async def check(settings: Settings, report: Callable[[str], None] = print) -> bool:
    """Run every check, report one line each; True when all passed."""
    ok = True

    def result(good: bool, what: str, detail: str = "") -> None:
        nonlocal ok
        ok = ok and good
        report(f"{'ok  ' if good else 'FAIL'}  {what}" + (f": {detail}" if detail else ""))

    result(True, "configuration", settings.source or "built-in defaults and environment")
    if settings.tls.configured:
        try:
            tls_context(settings.tls)
            result(True, "TLS certificate", str(settings.tls.cert))
        except StartError as exc:
            result(False, "TLS certificate", str(exc))
    for name in ("file", "xferlog"):
        target = getattr(settings.logging, name)
        if target is not None:
            problem = _writable(target)
            result(problem is None, f"[logging] {name} {target}", problem or "writable")
    for listener in settings.listeners:
        problem = _listen_free(listener.host, listener.port)
        result(problem is None, f"listen {listener.host}:{listener.port}", problem or "free")
    roots: set[str] = set()
    from gateway.service.temporaries import folder_roots, static_folder_roots

    folders = static_folder_roots(settings)
    try:
        manager = build_user_manager(settings)
    except StartError as exc:
        result(False, "accounts", str(exc))
        manager = None
    if manager is not None and settings.users.source == "database":
        from gateway.users.database import DatabaseUserManager  # loaded by build_user_manager

        assert isinstance(manager, DatabaseUserManager)
        url = manager.url.render_as_string(hide_password=True)
        try:
            async with asyncio.timeout(60):
                await manager.connect()
                from gateway.users.database import admin

                accounts = await admin.list_accounts(manager.engine)
            result(True, "accounts database", f"{url} ({len(accounts)} account(s), schema current)")
            roots.update(account.storage_root for account in accounts if account.storage_root)
            folders = await folder_roots(settings, manager)
        except Exception as exc:
            result(False, "accounts database", f"{url}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
        finally:
            await manager.close()
    elif manager is not None:
        result(True, "accounts", f"{len(settings.users.static)} static user(s)")
        for entry in settings.users.static:
            roots.add(entry.root or f"{settings.storage.root.rstrip('/')}/{entry.login}")
    options = dict(settings.storage.options) or None
    for root in sorted(roots):
        if "://" not in root:
            continue  # local roots are created on first login
        problem = await _root_reachable(root, options)
        result(problem is None, f"storage {root}", problem or "reachable")
    if "://" in settings.storage.root:
        problem = await _root_reachable(settings.storage.root, options)
        result(problem is None, f"storage {settings.storage.root}", problem or "reachable")
    if settings.events.active:
        problem, what = await _outbox_reachable(settings)
        if what is not None:
            result(problem is None, f"[events] outbox {what}", problem or "reachable")
    for root, own in sorted(folders.items()):
        if "://" not in root or root in roots:
            continue  # local folders are created on first use
        problem = await _root_reachable(root, {**settings.storage.options, **own} or None)
        result(problem is None, f"folder storage {root}", problem or "reachable")
    return ok


async def repair_storage(settings: Settings, report: Callable[[str], None] = print) -> bool:
    """Clean up upload temporaries in every storage root (``[storage]
    stale_temporary_age``), one line per root and per action; True when every root
    could be checked."""
    from backends.recovery.report import stale_text
    from gateway.observe.logs import escape_log_text
    from gateway.service.temporaries import repair

    age = settings.storage.stale_temporary_age
    report(f"clean-up of upload temporaries left by stopped uploads ({stale_text(age)})")
    manager: Any = None
    ok = True
    if settings.users.source == "database":
        try:
            manager = build_user_manager(settings)
            async with asyncio.timeout(60):
                await manager.connect()
        except Exception as exc:
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            report(f"FAIL  accounts database: {escape_log_text(text)} "
                   "(only the configured roots are cleaned up)")
            ok = False
            if manager is not None:
                await manager.close()
            manager = None
    try:
        return await repair(settings, manager, report, escape=escape_log_text) and ok
    finally:
        if manager is not None:
            await manager.close()

