"""``gateway events``: the outbox of event deliveries, seen and handled by hand.

The outbox is found as ``gateway serve`` finds it: from the configuration (``-c`` or
``GATEWAY_CONFIG``: ``[events] database_url``, else the accounts database, else the
embedded ``var/events.sqlite3`` with static users), or given with ``--database-url``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from gateway.cli._common import run_with_engine

__all__ = ("events",)

_config_option = click.option(
    "-c", "--config", "config_file", type=click.Path(dir_okay=False, readable=False, path_type=Path),
    help="The configuration gateway serve runs with (also GATEWAY_CONFIG): it names the outbox.",
)
_url_option = click.option(
    "--database-url", "database_url", metavar="URL",
    help="SQLAlchemy URL of the outbox database, instead of the configuration's.",
)


def _outbox_url(config_file: Path | None, database_url: str | None) -> str:
    if database_url:
        return database_url
    from gateway.config import ConfigError, load_settings
    from gateway.events.service import outbox_url

    try:
        settings = load_settings(config_file)
    except ConfigError as exc:
        raise click.ClickException(f"bad configuration: {exc}") from None
    url = outbox_url(settings)
    if url is not None:
        return url
    from gateway.users.database.urls import database_url as accounts_url

    return accounts_url(settings.users.database.url).render_as_string(hide_password=False)


def _missing_sqlite_file(url: str) -> str | None:
    """The path of an SQLite outbox file that does not exist (connecting would make
    it, empty), or None."""
    from gateway.users.database.urls import normalize_url

    try:
        parsed = normalize_url(url)
    except Exception:
        return None  # said by the connection, in its own words
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return None
    path = Path(database).expanduser()
    return None if path.exists() else str(path)


def _run(config_file: Path | None, database_url: str | None, work: Any) -> Any:
    url = _outbox_url(config_file, database_url)
    missing = _missing_sqlite_file(url)
    if missing is not None:
        raise click.ClickException(
            f"no event outbox at {missing}: no event was recorded there yet (is [events] configured, "
            "and is this the directory gateway serve runs in?)"
        )

    async def guarded(engine: Any) -> Any:
        from sqlalchemy import inspect

        async with engine.connect() as connection:
            names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        if "event_outbox" not in names:
            from gateway.users.database.urls import safe_url

            raise click.ClickException(
                f"no event outbox in {safe_url(engine.url)}: no event was recorded there yet "
                "(is [events] configured?), or the schema is older: run 'gateway db upgrade'"
            )
        return await work(engine)

    return run_with_engine(url, guarded, check_schema=False)


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


@click.group()
def events() -> None:
    """See, retry and purge the deliveries of events to their actions."""


@events.command("list")
@_config_option
@_url_option
@click.option("--status", type=click.Choice(["pending", "failed", "delivered"]), help="Only these.")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True, help="The most recent N.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, with the event.")
def list_(config_file: Path | None, database_url: str | None, status: str | None, limit: int,
          as_json: bool) -> None:
    """The most recent deliveries, oldest first."""
    from gateway.events import outbox

    rows = _run(config_file, database_url,
                lambda engine: outbox.list_rows(engine, status=status, limit=limit))
    if as_json:
        for row in rows:
            row = dict(row)
            row["event"] = json.loads(row.pop("body"))
            click.echo(json.dumps(row, sort_keys=True))
        return
    if not rows:
        click.echo("no deliveries" + (f" with status {status}" if status else ""))
        return
    now = time.time()
    click.echo(f"{'ID':>6}  {'STATUS':9}  {'TRIES':>5}  {'AGE':>5}  {'ACTION':12}  {'ACCOUNT':12}  "
               f"{'KIND':8}  PATH / LAST ERROR")
    for row in rows:
        line = (f"{row['id']:>6}  {row['status']:9}  {row['attempts']:>5}  "
                f"{_age(now - row['created_at']):>5}  {row['action'][:12]:12}  "
                f"{row['account'][:12]:12}  {row['kind']:8}  {row['path'] or ''}")
        click.echo(line)
        if row["last_error"] and row["status"] != "delivered":
            click.echo(f"{'':>8}{row['last_error']}")


@events.command()
@_config_option
@_url_option
@click.argument("ids", nargs=-1)
@click.option("--failed", is_flag=True, help="Every delivery that was given up.")
def retry(config_file: Path | None, database_url: str | None, ids: tuple[str, ...], failed: bool) -> None:
    """Deliver again: the deliveries IDS (row numbers or event ids), or --failed."""
    if not ids and not failed:
        raise click.UsageError("name the deliveries (IDS) or give --failed")
    from gateway.events import outbox

    count = _run(config_file, database_url, lambda engine: outbox.retry(engine, ids, failed=failed))
    click.echo(f"{count} deliver{'y' if count == 1 else 'ies'} queued again")


@events.command()
@_config_option
@_url_option
@click.option("--delivered", is_flag=True, help="Deliveries that were made (the default).")
@click.option("--failed", is_flag=True, help="Deliveries that were given up.")
@click.option("--older-than", metavar="DURATION",
              help="Only those whose event is older than this: 3600, \"12h\", \"30m\".")
def purge(config_file: Path | None, database_url: str | None, delivered: bool, failed: bool,
          older_than: str | None) -> None:
    """Delete finished deliveries (pending ones are never deleted)."""
    from gateway.config import values
    from gateway.events import outbox

    seconds = None
    if older_than is not None:
        try:
            seconds = values.to_duration(older_than)
        except values.ValueProblem as exc:
            raise click.BadParameter(str(exc), param_hint="--older-than") from None
    statuses = [name for name, chosen in (("delivered", delivered), ("failed", failed)) if chosen]
    count = _run(config_file, database_url, lambda engine: outbox.purge(
        engine, statuses=statuses or ["delivered"], older_than=seconds))
    click.echo(f"{count} deliver{'y' if count == 1 else 'ies'} deleted")
