"""``gateway folders``: virtual folders, storage roots that accounts mount in their tree.

A folder is a name, a storage root (a path or a URL) and its storage options; mount
one in an account with ``gateway users mount LOGIN VPATH FOLDER [--read-only]``.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import click

from gateway.cli._common import database_url_option, run_with_engine

__all__ = ("folders",)

#: option names whose values are never shown (credentials)
_SECRET = re.compile(r"secret|password|passwd|token|credential|private|session_key", re.IGNORECASE)


def _shown(options: dict[str, Any]) -> dict[str, Any]:
    return {key: "***" if _SECRET.search(key) else value for key, value in options.items()}


def _stamp(value: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value)) if value else "-"


def _as_dict(folder: Any) -> dict[str, Any]:
    return {
        "name": folder.name,
        "root": folder.storage_root,
        "options": _shown(folder.options),
        "description": folder.description,
        "mounts": [
            {"login": m.login, "path": m.path, "read_only": m.read_only} for m in folder.mounts
        ],
    }


@click.group()
def folders() -> None:
    """Manage virtual folders (storage roots accounts mount at a path of their tree)."""


@folders.command()
@database_url_option
@click.argument("name")
@click.argument("root", metavar="ROOT")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="A storage option for this root (repeatable), merged over the server's "
                   "[storage.options]: endpoint_url=..., region_name=...; JSON values "
                   "(numbers, true) are read as such.")
@click.option("--description", default=None, help="What the folder is for.")
def add(database_url: str | None, name: str, root: str, options: tuple[str, ...],
        description: str | None) -> None:
    """Add the folder NAME on ROOT: a local path or a URL (s3://bucket/prefix, memory://...)."""
    from gateway.users.database import admin, folder_admin

    try:
        folder_admin.validate_folder_name(name)
        admin.validate_root(root)
        parsed = dict(folder_admin.parse_option(text) for text in options)
    except admin.AccountError as exc:
        raise click.ClickException(str(exc)) from None

    async def work(engine: Any) -> None:
        await folder_admin.add_folder(engine, name, root, options=parsed, description=description)

    run_with_engine(database_url, work)
    click.echo(f"folder {name!r} added on {root}")


@folders.command(name="list")
@database_url_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_(database_url: str | None, as_json: bool) -> None:
    """List the folders and how many accounts mount each."""
    from gateway.users.database import folder_admin

    found = run_with_engine(database_url, folder_admin.list_folders)
    if as_json:
        click.echo(json.dumps([_as_dict(f) for f in found], indent=2))
        return
    if not found:
        click.echo("no folders")
        return
    rows = [("NAME", "MOUNTS", "ROOT", "DESCRIPTION")]
    rows += [(f.name, str(len(f.mounts)), f.storage_root, f.description or "") for f in found]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


@folders.command()
@database_url_option
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def show(database_url: str | None, name: str, as_json: bool) -> None:
    """Show the folder NAME: root, options (credentials hidden) and where it is mounted."""
    from gateway.users.database import folder_admin

    async def work(engine: Any) -> Any:
        return await folder_admin.get_folder(engine, name)

    folder = run_with_engine(database_url, work)
    if as_json:
        click.echo(json.dumps(_as_dict(folder), indent=2))
        return
    click.echo(f"name:        {folder.name}")
    click.echo(f"root:        {folder.storage_root}")
    click.echo(f"description: {folder.description or '-'}")
    click.echo(f"created:     {_stamp(folder.created_at)}   updated: {_stamp(folder.updated_at)}")
    shown = _shown(folder.options)
    click.echo("options:" + ("" if shown else "     none (the server's [storage.options])"))
    for key, value in sorted(shown.items()):
        click.echo(f"  {key} = {json.dumps(value) if not isinstance(value, str) else value}")
    click.echo("mounted by:" + ("" if folder.mounts else "  nobody"))
    for m in folder.mounts:
        click.echo(f"  {m.login}  at {m.path}{'  read-only' if m.read_only else ''}")


@folders.command()
@database_url_option
@click.argument("name")
@click.option("--force", is_flag=True, help="Also unmount it from every account that mounts it.")
def delete(database_url: str | None, name: str, force: bool) -> None:
    """Delete the folder NAME (its files stay where they are)."""
    from gateway.users.database import folder_admin

    async def work(engine: Any) -> Any:
        return await folder_admin.delete_folder(engine, name, force=force)

    removed = run_with_engine(database_url, work)
    for m in removed:
        click.echo(f"unmounted from {m.login!r} at {m.path}")
    click.echo(f"folder {name!r} deleted")
