"""Cleaning up what killed uploads left, for ``gateway serve``: at start-up and with
``gateway serve --repair``.

Which roots: the default storage root (which holds every ``<root>/<login>`` account),
the static accounts' own roots, the distinct roots of database accounts (at most
``MAX_DATABASE_ROOTS`` of them), and every folder's root (``[[folders]]`` and the
database's folders, each with its own storage options).  A root inside another one in the list is covered by
it.  What is done per root is ``backends.recovery``'s business.

At start-up the local roots come first, before the listeners open: an append cut off
by a kill -9 is rolled back before any client can see (or resume from) the half-written
file.  That wait is bounded by ``START_BUDGET`` seconds; whatever is left of the walk,
and every S3 root (incomplete uploads are invisible to clients, so nothing is in a
hurry there), continues in the background while the server runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from backends.recovery import LocalRecovery, RootRecovery, RootReport, recovery_for_root
from gateway.config.model import Settings

__all__ = (
    "MAX_DATABASE_ROOTS",
    "START_BUDGET",
    "configured_roots",
    "database_roots",
    "distinct_roots",
    "folder_roots",
    "static_folder_roots",
    "recover_at_start",
    "repair",
)

logger = logging.getLogger("gateway.service")

#: Seconds start-up waits for the local roots before it opens the listeners.
START_BUDGET = 10.0
#: Distinct storage roots of database accounts looked at.
MAX_DATABASE_ROOTS = 10_000
#: Seconds the query for those roots may take.
_QUERY_TIMEOUT = 30.0


def _is_url(root: str) -> bool:
    return "://" in root


def configured_roots(settings: Settings) -> list[str]:
    """The default storage root and the static accounts' own roots, local ones absolute."""
    default = settings.storage.root
    roots = [default if _is_url(default) else os.path.abspath(default)]
    if settings.users.source == "static":
        for entry in settings.users.static:
            if entry.root:
                roots.append(entry.root if _is_url(entry.root) else os.path.abspath(entry.root))
    return roots


async def database_roots(manager: Any, limit: int = MAX_DATABASE_ROOTS) -> list[str]:
    """The distinct storage roots of the database's accounts (at most ``limit``);
    [] for a manager without a database."""
    engine = getattr(manager, "engine", None)
    if engine is None:
        return []
    from sqlalchemy import select

    from gateway.users.database.models import UserRow

    query = select(UserRow.storage_root).distinct().order_by(UserRow.storage_root).limit(limit)
    async with asyncio.timeout(_QUERY_TIMEOUT), engine.connect() as connection:
        rows = (await connection.execute(query)).scalars().all()
    return [str(root) for root in rows if root]


def static_folder_roots(settings: Settings) -> dict[str, dict[str, Any]]:
    """The ``[[folders]]`` roots (local ones absolute) with their storage options."""
    return {
        folder.root if _is_url(folder.root) else os.path.abspath(folder.root): dict(folder.options)
        for folder in settings.folders
    }


async def folder_roots(settings: Settings, manager: Any) -> dict[str, dict[str, Any]]:
    """Every folder's root, with the folder's own storage options: the ``[[folders]]``
    of the configuration and those of the accounts database."""
    found = static_folder_roots(settings)
    engine = getattr(manager, "engine", None)
    if engine is None:
        return found
    from sqlalchemy import select

    from gateway.users.database.folders import FolderRow

    query = select(FolderRow.storage_root, FolderRow.options).order_by(FolderRow.name)
    async with asyncio.timeout(_QUERY_TIMEOUT), engine.connect() as connection:
        for root, options in (await connection.execute(query)).all():
            if root:
                found.setdefault(str(root), dict(options or {}))
    return found


def _key(root: str) -> str:
    if _is_url(root):
        return root.rstrip("/") + "/"
    return os.path.normpath(os.path.abspath(root)).rstrip("/") + "/"


def distinct_roots(roots: Iterable[str]) -> list[str]:
    """``roots`` without duplicates and without those inside another one listed."""
    kept: list[tuple[str, str]] = []
    for key, root in sorted((_key(root), root) for root in roots):
        if kept and key.startswith(kept[-1][0]):
            continue  # the same root, or one below the last kept
        kept.append((key, root))
    return [root for _, root in kept]


def _build(roots: Iterable[str], settings: Settings, *,
           on_error: Callable[[str, str], None],
           on_unsupported: Callable[[str], None] = lambda root: None,
           folder_options: dict[str, dict[str, Any]] | None = None) -> list[RootRecovery]:
    age = settings.storage.stale_temporary_age
    recoveries: list[RootRecovery] = []
    for root in roots:
        # a folder's own options (its endpoint, credentials) over the server's
        options = {**settings.storage.options, **(folder_options or {}).get(root, {})} or None
        try:
            recovery = recovery_for_root(root, age, options=options)
        except Exception as exc:  # a root no backend can serve, a package not installed
            on_error(root, f"{type(exc).__name__}: {exc}")
            continue
        if recovery is None:
            on_unsupported(root)
        else:
            recoveries.append(recovery)
    return recoveries


def _log_report(report: RootReport) -> None:
    if report.actions or report.error_count or report.truncated:
        logger.info("temporaries in %s: %s", report.root, report.summary())


async def _finish(recoveries: list[RootRecovery]) -> None:
    try:
        for recovery in recoveries:
            try:
                await recovery.run()
            except Exception:
                logger.exception("clean-up of upload temporaries in %s failed",
                                 recovery.report.root)
            else:
                _log_report(recovery.report)
            await recovery.aclose()
        logger.info("clean-up of upload temporaries finished")
    finally:
        for recovery in recoveries:
            with contextlib.suppress(Exception):
                await recovery.aclose()


async def recover_at_start(settings: Settings, manager: Any,
                           budget: float = START_BUDGET) -> asyncio.Task[None] | None:
    """Clean up the local roots for up to ``budget`` seconds; return the task that does
    the rest in the background (None when nothing is left).  Never raises: a root that
    cannot be cleaned is logged, and the server starts anyway."""
    roots = configured_roots(settings)
    folders: dict[str, dict[str, Any]] = {}
    try:
        roots += await database_roots(manager)
        folders = await folder_roots(settings, manager)
    except Exception as exc:
        logger.warning("clean-up of upload temporaries: cannot list the accounts' storage "
                       "roots (%s); only the configured roots are cleaned", exc)
        folders = static_folder_roots(settings)
    roots += list(folders)
    recoveries = _build(
        distinct_roots(roots), settings,
        on_error=lambda root, text: logger.warning("temporaries in %s: not checked: %s", root, text),
        folder_options=folders,
    )
    deadline = time.monotonic() + budget
    for recovery in recoveries:
        if isinstance(recovery, LocalRecovery) and time.monotonic() < deadline:
            try:
                await recovery.run(deadline=deadline)
            except Exception:
                logger.exception("clean-up of upload temporaries in %s failed", recovery.report.root)
                recovery.report.done = True
            if recovery.report.done:
                _log_report(recovery.report)
                await recovery.aclose()
    left = [recovery for recovery in recoveries if not recovery.report.done]
    if not left:
        return None
    logger.info("clean-up of upload temporaries continues in the background (%d root(s))", len(left))
    return asyncio.ensure_future(_finish(left))


async def repair(settings: Settings, manager: Any, report: Callable[[str], None],
                 *, escape: Callable[[str], str] = str) -> bool:
    """Clean up every root now, whatever it takes; report one line per root and one per
    action.  True when every root could be checked."""
    ok = True

    def failed(root: str, text: str) -> None:
        nonlocal ok
        ok = False
        report(f"FAIL  temporaries in {escape(root)}: {escape(text)}")

    roots = configured_roots(settings)
    folders = static_folder_roots(settings)
    if manager is not None:
        try:
            roots += await database_roots(manager)
            folders = await folder_roots(settings, manager)
        except Exception as exc:
            ok = False
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            report(f"FAIL  accounts' storage roots: {escape(text)}")
    roots += list(folders)
    def unsupported(root: str) -> None:
        report(f"skip  temporaries in {escape(root)}: no clean-up for this kind of storage")

    for recovery in _build(distinct_roots(roots), settings, on_error=failed,
                           on_unsupported=unsupported, folder_options=folders):
        try:
            await recovery.run()
        finally:
            await recovery.aclose()
        result = recovery.report
        if result.error_count:
            failed(result.root, f"{result.summary()}; first error: {result.errors[0]}")
        else:
            report(f"ok    temporaries in {escape(result.root)}: {result.summary()}")
        for action in result.actions:
            report(f"      {escape(str(action))}")
    return ok
