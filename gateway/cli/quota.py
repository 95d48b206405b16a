"""``gateway users quota``: an account's (or a shared folder's) quota and usage.

``gateway users quota alice`` shows it, ``--set max-bytes=10G --set max-files=none``
changes it, ``--rescan`` counts the account's files again from its storage (after
files changed around the gateway), ``--json`` for scripts.  ``--folder NAME`` works
on a shared folder's quota instead (max-bytes, max-files).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from gateway.cli._common import database_url_option, run_with_engine

__all__ = ("quota",)


def _show(info: Any, *, folder: bool) -> None:
    from gateway.users.quotas import format_size

    kind = "folder" if folder else "user"
    click.echo(f"{kind}: {info.name}")
    if info.quota is None:
        click.echo("quota: none (usage not counted)")
        return
    usage = info.usage
    shown = {
        "max_bytes": (usage.bytes if usage else 0, True),
        "max_files": (usage.files if usage else 0, False),
        "upload_per_day": (info.transfers.uploaded_day, True),
        "upload_per_month": (info.transfers.uploaded_month, True),
        "download_per_day": (info.transfers.downloaded_day, True),
        "download_per_month": (info.transfers.downloaded_month, True),
    }
    for name, limit in info.quota.as_dict().items():
        if folder and name not in ("max_bytes", "max_files"):
            continue
        used, is_size = shown[name]
        used_text = format_size(used) if is_size else str(used)
        limit_text = "none" if limit is None else (format_size(limit) if is_size else str(limit))
        click.echo(f"{name.replace('_', '-')}: {limit_text}   used: {used_text}")
    if usage is not None and usage.reserved:
        click.echo(f"claimed by running uploads: {format_size(usage.reserved)}")


def _storage_for(root: str, config_file: Path | None) -> tuple[Any, Any]:
    """The path I/O and real root of an account's storage root, with the storage
    options of the configuration ``gateway serve`` reads (endpoint, credentials)."""
    from backends import backend_for_root
    from gateway.config import ConfigError, load_settings

    try:
        settings = load_settings(config_file)
    except ConfigError as exc:
        raise click.ClickException(f"bad configuration: {exc}") from None
    if root.startswith("memory:"):
        raise click.ClickException(
            f"{root} is the memory of the serving process: a rescan from here sees nothing")
    target: Any = root if "://" in root else Path(root)
    try:
        factory, real_root = backend_for_root(target, dict(settings.storage.options) or None)
    except (ImportError, ValueError, TypeError) as exc:
        raise click.ClickException(f"storage {root} cannot be opened: {exc}") from None
    return factory(), real_root


@click.command()
@database_url_option
@click.argument("name")
@click.option("--set", "settings", multiple=True, metavar="NAME=VALUE",
              help="Change a limit: max-bytes, max-files, upload-per-day, upload-per-month, "
                   "download-per-day, download-per-month (sizes: 10G, 512M; x1024); none "
                   "removes it.  Repeat for more.")
@click.option("--rescan", is_flag=True,
              help="Count the account's files again from its storage (a disk walk, an S3 "
                   "listing) and replace the counted usage; run it while it is not uploading.")
@click.option("--folder", is_flag=True, help="NAME is a shared folder, not a login.")
@click.option("-c", "--config", "config_file", envvar="GATEWAY_CONFIG", show_envvar=True,
              type=click.Path(dir_okay=False, readable=False, path_type=Path),
              help="The TOML configuration `gateway serve` reads: storage options for "
                   "--rescan and, without --database-url, the accounts database.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def quota(database_url: str | None, name: str, settings: tuple[str, ...], rescan: bool,
          folder: bool, config_file: Path | None, as_json: bool) -> None:
    """Show or change the quota of the account NAME (or of the shared folder NAME)."""
    from gateway.users.database import quotaadmin
    from gateway.users.quotas import QuotaSettingError, parse_quota_setting

    try:
        changes = dict(parse_quota_setting(text) for text in settings)
    except QuotaSettingError as exc:
        raise click.ClickException(str(exc)) from None
    if folder and rescan:
        raise click.UsageError("--rescan counts an account's files; a folder's are counted "
                               "as its users change them")
    if database_url is None and config_file is not None:
        from gateway.config import ConfigError, load_settings

        try:
            database_url = load_settings(config_file).users.database.url
        except ConfigError as exc:
            raise click.ClickException(f"bad configuration: {exc}") from None
    notes: list[str] = []

    async def work(engine: Any) -> Any:
        if folder:
            if changes:
                await quotaadmin.set_folder_quota(engine, name, changes)
            return await quotaadmin.get_folder_quota(engine, name)
        if changes:
            new = await quotaadmin.set_quota(engine, name, changes)
            if new and not rescan:
                notes.append(f"usage of {name!r} is counted from now on; files stored before "
                             f"are counted by: gateway users quota --rescan {name}")
        if rescan:
            from backends.errors import PathIOError

            info = await quotaadmin.get_quota(engine, name)
            path_io, root = _storage_for(info.storage_root, config_file)
            try:
                usage = await quotaadmin.rescan_account(engine, name, path_io, root)
            except PathIOError as exc:
                raise click.ClickException(
                    f"cannot count the files of {info.storage_root}: {exc.cause or exc}") from None
            notes.append(f"rescanned {info.storage_root}: {usage.files} files, {usage.bytes} bytes")
        return await quotaadmin.get_quota(engine, name)

    info = run_with_engine(database_url, work)
    if as_json:
        click.echo(json.dumps(info.as_dict(), indent=2))
        return
    for note in notes:
        click.echo(note)
    _show(info, folder=folder)
