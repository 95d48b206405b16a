"""``gateway users``: accounts, their rights by path, their limits and storage policy.

Passwords come from a hidden prompt or from stdin (``--password-stdin``), never from
an argument, where they would land in shell history and the process list.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from gateway.cli._common import database_url_option, run_with_engine
from gateway.cli.quota import quota

__all__ = ("users",)

_RIGHTS = {"r": (True, False), "w": (False, True), "rw": (True, True), "none": (False, False)}

_LIMIT_OPTIONS = (
    ("maximum_connections", "--max-connections", "Sessions at once, on all nodes together."),
    # aioftp's naming: the server "reads" uploads and "writes" downloads
    ("read_speed_limit", "--read-limit",
     "Bytes/s the server reads from the user (uploads), all sessions together; k/m/g suffixes."),
    ("write_speed_limit", "--write-limit",
     "Bytes/s the server writes to the user (downloads), all sessions together."),
    ("read_speed_limit_per_connection", "--read-limit-per-connection",
     "Bytes/s per session, uploads."),
    ("write_speed_limit_per_connection", "--write-limit-per-connection",
     "Bytes/s per session, downloads."),
)


def _limit_options(func: Any) -> Any:
    for name, flag, help_text in reversed(_LIMIT_OPTIONS):
        func = click.option(flag, name, metavar="N|none", default=None, help=help_text)(func)
    return func


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        password = password[:-1] if password.endswith("\r") else password
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise click.ClickException("empty password refused (use --no-password for none)")
    if len(password) > 1024:
        raise click.ClickException("password longer than 1024 characters refused")
    return password


def _hash(password: str) -> str:
    from gateway.users.database.hashing import PasswordHashing

    try:
        return PasswordHashing().hash(password)
    except ValueError as exc:  # a bad GATEWAY_ARGON2_* value
        raise click.ClickException(str(exc)) from None


def _rights(readable: bool, writable: bool) -> str:
    return ("r" if readable else "-") + ("w" if writable else "-")


def _stamp(value: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value)) if value else "-"


@click.group()
def users() -> None:
    """Manage the accounts in the database."""


users.add_command(quota)


def _default_root(config_file: Path | None, login: str) -> tuple[str, Any]:
    """``<storage root>/<login>`` as ``gateway serve`` gives its static accounts, and the
    settings it came from (the same file, ``GATEWAY_*`` variables and defaults).

    A relative storage root (the default ``var/ftp``) is taken from the working
    directory, as the server started there takes it.
    """
    from gateway.config import ConfigError, load_settings

    try:
        settings = load_settings(config_file)
    except ConfigError as exc:
        raise click.ClickException(f"bad configuration: {exc}") from None
    base = settings.storage.root
    if "://" in base:
        return f"{base.rstrip('/')}/{login}", settings
    return os.path.abspath(os.path.join(base, login)), settings


@users.command()
@database_url_option
@click.argument("login")
@click.option("--root", "storage_root", default=None, metavar="PATH|URL",
              help="Where the user's files live: an absolute path or a URL "
                   "(s3://bucket/prefix).  Default: <storage root>/LOGIN, the storage root "
                   "of the configuration `gateway serve` reads (var/ftp in the working "
                   "directory unless configured).")
@click.option("-c", "--config", "config_file", envvar="GATEWAY_CONFIG", show_envvar=True,
              type=click.Path(dir_okay=False, readable=False, path_type=Path),
              help="The TOML configuration `gateway serve` reads: the default root and, "
                   "without --database-url, the accounts database come from it.")
@click.option("--home", "home_path", default="/", show_default=True, metavar="PATH",
              help="Virtual directory a session starts in.")
@click.option("--read-only", is_flag=True, help="Grant read only on / (default read/write).")
@click.option("--disabled", is_flag=True, help="Create the account disabled.")
@click.option("--no-password", is_flag=True,
              help="An account that logs in without a password (for anonymous access).")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@click.option("--encoding", default=None, metavar="CODEC",
              help="Code page of this account's file names (cp1251, latin-1...); default: the listener's.")
@_limit_options
def add(
    database_url: str | None,
    login: str,
    storage_root: str | None,
    config_file: Path | None,
    home_path: str,
    read_only: bool,
    disabled: bool,
    no_password: bool,
    password_stdin: bool,
    encoding: str | None,
    **limits: str | None,
) -> None:
    """Create the account LOGIN (asks for its password).

    Without --root its files live in <storage root>/LOGIN, as for an account listed in
    the configuration file.
    """
    from gateway.users.database import admin

    if no_password and password_stdin:
        raise click.UsageError("--no-password and --password-stdin exclude each other")
    # check before asking for a password the operator would then type for nothing
    try:
        admin.validate_login(login)
        if storage_root is None or config_file is not None:
            default_root, settings = _default_root(config_file, login)
            storage_root = storage_root or default_root
            database_url = database_url or settings.users.database.url
        admin.validate_root(storage_root)
        admin.validate_virtual_path(home_path)
        admin.validate_encoding(encoding)
        parsed = {name: admin.parse_limit(name, value) for name, value in limits.items()}
    except admin.AccountError as exc:
        raise click.ClickException(str(exc)) from None
    password_hash = None if no_password else _hash(_read_password(password_stdin))

    async def work(engine: Any) -> None:
        await admin.add_user(
            engine,
            login,
            password_hash=password_hash,
            storage_root=storage_root,
            home_path=home_path,
            enabled=not disabled,
            permissions_=[("/", True, not read_only)],
            limits=parsed,
            encoding=encoding,
        )

    run_with_engine(database_url, work)
    click.echo(f"user {login!r} added, files in {storage_root}")


@users.command(name="list")
@database_url_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_(database_url: str | None, as_json: bool) -> None:
    """List the accounts."""
    from gateway.users.database import admin

    accounts = run_with_engine(database_url, admin.list_accounts)
    if as_json:
        click.echo(json.dumps([_as_dict(a) for a in accounts], indent=2))
        return
    if not accounts:
        click.echo("no users")
        return
    rows = [("LOGIN", "ENABLED", "PASSWORD", "MAX CONN", "SESSIONS", "ROOT")]
    for a in accounts:
        maximum = a.limits["maximum_connections"]
        rows.append((
            a.login,
            "yes" if a.enabled else "no",
            "yes" if a.has_password else "none",
            "-" if maximum is None else str(maximum),
            str(a.sessions),
            a.storage_root,
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


@users.command()
@database_url_option
@click.argument("login")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def show(database_url: str | None, login: str, as_json: bool) -> None:
    """Show one account: settings, limits, rules by path, live sessions."""
    from gateway.users.database import admin, folder_admin

    async def work(engine: Any) -> tuple[admin.AccountInfo, list[folder_admin.MountInfo]]:
        return await admin.get_account(engine, login), await folder_admin.mounts_of(engine, login)

    account, mounts = run_with_engine(database_url, work)
    if as_json:
        click.echo(json.dumps({**_as_dict(account), "mounts": [
            {"path": m.path, "folder": m.folder, "root": m.storage_root, "read_only": m.read_only}
            for m in mounts
        ]}, indent=2))
        return
    click.echo(f"login:     {account.login}")
    click.echo(f"enabled:   {'yes' if account.enabled else 'no'}")
    click.echo(f"password:  {'set' if account.has_password else 'none (logs in without)'}")
    click.echo(f"root:      {account.storage_root}")
    click.echo(f"home:      {account.home_path}")
    click.echo(f"encoding:  {account.encoding or 'the listener' + chr(39) + 's'}")
    for name, value in account.limits.items():
        click.echo(f"{name.replace('_', ' ')}: {'none' if value is None else value}")
    click.echo(f"sessions:  {account.sessions}")
    click.echo(f"created:   {_stamp(account.created_at)}   updated: {_stamp(account.updated_at)}")
    policy = account.policy
    click.echo(f"allow from: {', '.join(policy['allow_from']) or 'any address'}")
    click.echo(f"deny from:  {', '.join(policy['deny_from']) or 'none'}")
    click.echo(f"allow names: {' '.join(policy['allow_names']) or 'any'}")
    click.echo(f"deny names:  {' '.join(policy['deny_names']) or 'none'}"
               + ("  (hidden)" if policy["hide_denied"] and policy["deny_names"] else ""))
    if policy["names_case_sensitive"]:
        click.echo("name patterns: case-sensitive")
    size = policy["max_file_size"]
    click.echo(f"max file size: {'none' if size is None else size}")
    click.echo("permissions (nearest parent wins):")
    if not account.permissions:
        click.echo("  (none: no access)")
    for path, readable, writable in account.permissions:
        click.echo(f"  {_rights(readable, writable)}  {path}")
    click.echo("folders (virtual folders mounted in the tree):" if mounts else "folders:   none")
    for m in mounts:
        click.echo(f"  {m.path}  {m.folder}  ({m.storage_root}){'  read-only' if m.read_only else ''}")


@users.command()
@database_url_option
@click.argument("login")
@click.option("--password-stdin", is_flag=True, help="Read the new password from stdin.")
@click.option("--no-password", is_flag=True, help="Remove the password (login without one).")
def passwd(database_url: str | None, login: str, password_stdin: bool, no_password: bool) -> None:
    """Set the password of LOGIN."""
    from gateway.users.database import admin

    if no_password and password_stdin:
        raise click.UsageError("--no-password and --password-stdin exclude each other")

    async def exists(engine: Any) -> None:
        await admin.get_account(engine, login)

    run_with_engine(database_url, exists)  # an unknown user fails before the prompt
    password_hash = None if no_password else _hash(_read_password(password_stdin))

    async def work(engine: Any) -> None:
        await admin.set_password_hash(engine, login, password_hash)

    run_with_engine(database_url, work)
    click.echo(f"password of {login!r} changed")


def _toggle(enabled: bool) -> Any:
    @database_url_option
    @click.argument("login")
    def command(database_url: str | None, login: str) -> None:
        from gateway.users.database import admin

        async def work(engine: Any) -> None:
            await admin.set_enabled(engine, login, enabled)

        run_with_engine(database_url, work)
        click.echo(f"user {login!r} {'enabled' if enabled else 'disabled'}")

    return command


users.command(name="enable", help="Allow LOGIN to log in again.")(_toggle(True))
users.command(name="disable", help="Refuse new logins of LOGIN (sessions already open go on).")(
    _toggle(False)
)


@users.command()
@database_url_option
@click.argument("login")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete(database_url: str | None, login: str, yes: bool) -> None:
    """Delete the account LOGIN with its rules."""
    from gateway.users.database import admin

    if not yes:
        click.confirm(f"delete user {login!r}?", abort=True)

    async def work(engine: Any) -> None:
        await admin.delete_user(engine, login)

    run_with_engine(database_url, work)
    click.echo(f"user {login!r} deleted")


@users.command()
@database_url_option
@click.argument("login")
@click.argument("path")
@click.argument("rights", type=click.Choice(sorted(_RIGHTS)))
def grant(database_url: str | None, login: str, path: str, rights: str) -> None:
    """Set LOGIN's RIGHTS on the virtual PATH and below: r, w, rw or none.

    The rule of the nearest parent applies to a path, so "grant alice / r" and
    "grant alice /incoming rw" make everything readable and /incoming writable.
    """
    from gateway.users.database import admin

    readable, writable = _RIGHTS[rights]

    async def work(engine: Any) -> None:
        await admin.grant(engine, login, path, readable=readable, writable=writable)

    run_with_engine(database_url, work)
    click.echo(f"{login!r}: {rights} on {path}")


@users.command()
@database_url_option
@click.argument("login")
@click.argument("path")
def revoke(database_url: str | None, login: str, path: str) -> None:
    """Remove LOGIN's rule on PATH (the nearest parent rule then applies there)."""
    from gateway.users.database import admin

    async def work(engine: Any) -> None:
        await admin.revoke(engine, login, path)

    run_with_engine(database_url, work)
    click.echo(f"{login!r}: rule on {path} removed")


@users.command()
@database_url_option
@click.argument("login")
@_limit_options
def limits(database_url: str | None, login: str, **changes: str | None) -> None:
    """Show or change LOGIN's connection limit and speed limits ("none" removes one)."""
    from gateway.users.database import admin

    given = {name: value for name, value in changes.items() if value is not None}

    async def work(engine: Any) -> admin.AccountInfo:
        if given:
            await admin.set_limits(engine, login, given)
        return await admin.get_account(engine, login)

    account = run_with_engine(database_url, work)
    for name, value in account.limits.items():
        click.echo(f"{name.replace('_', ' ')}: {'none' if value is None else value}")


@users.command(name="set")
@database_url_option
@click.argument("login")
@click.option("--root", "storage_root", default=None, metavar="PATH|URL", help="New storage root.")
@click.option("--home", "home_path", default=None, metavar="PATH", help="New home directory.")
@click.option("--encoding", default=None, metavar="CODEC",
              help='Code page of file names (cp1251, latin-1...); "" for the listener\'s.')
@click.option("--allow-from", multiple=True, metavar="CIDR",
              help="Client networks LOGIN may log in from (repeat, or a,b); the list given "
                   'replaces the stored one; "none" clears it (every address).')
@click.option("--deny-from", multiple=True, metavar="CIDR",
              help='Client networks LOGIN may not log in from; they win over --allow-from; "none" clears.')
@click.option("--allow-names", multiple=True, metavar="PATTERN",
              help="File name patterns new files must match (*.jpg; repeat for more); "
                   'directories are not constrained; "" clears.')
@click.option("--deny-names", multiple=True, metavar="PATTERN",
              help="File and directory name patterns LOGIN may not create (*.exe); a pattern "
                   'with / matches the whole virtual path; "" clears.')
@click.option("--hide-denied/--show-denied", default=None,
              help="Also hide names matching --deny-names from listings and answer 550 to "
                   "any command naming one (or show them again).")
@click.option("--names-case-sensitive/--names-ignore-case", default=None,
              help="Match name patterns with regard to case (default: ignore case).")
@click.option("--max-file-size", default=None, metavar="SIZE|none",
              help="Largest file an upload may make (100m, 2g; x1024); none removes it.")
def set_(database_url: str | None, login: str, storage_root: str | None, home_path: str | None,
         encoding: str | None, allow_from: tuple[str, ...], deny_from: tuple[str, ...],
         allow_names: tuple[str, ...], deny_names: tuple[str, ...], hide_denied: bool | None,
         names_case_sensitive: bool | None, max_file_size: str | None) -> None:
    """Change where LOGIN's files live, where its sessions start, its encoding, or its
    storage policy: networks it may log in from, file names it may create or see, and
    its largest file."""
    from gateway.users.database import admin

    given: dict[str, Any] = {
        "allow_from": list(allow_from) if allow_from else None,
        "deny_from": list(deny_from) if deny_from else None,
        "allow_names": list(allow_names) if allow_names else None,
        "deny_names": list(deny_names) if deny_names else None,
        "hide_denied": hide_denied,
        "names_case_sensitive": names_case_sensitive,
        "max_file_size": max_file_size,
    }
    policy = {name: value for name, value in given.items() if value is not None}
    try:
        if encoding:
            admin.validate_encoding(encoding)
        admin.parse_policy(policy)  # every value checked before anything is written
    except admin.AccountError as exc:
        raise click.ClickException(str(exc)) from None

    async def work(engine: Any) -> None:
        await admin.set_home(engine, login, home_path=home_path, storage_root=storage_root,
                             encoding=encoding)
        if policy:
            await admin.set_policy(engine, login, policy)

    run_with_engine(database_url, work)
    click.echo(f"user {login!r} updated")


@users.command()
@database_url_option
@click.argument("login")
@click.argument("vpath", metavar="VPATH")
@click.argument("folder")
@click.option("--read-only", is_flag=True, help="LOGIN may read the folder but change nothing in it.")
def mount(database_url: str | None, login: str, vpath: str, folder: str, read_only: bool) -> None:
    """Mount FOLDER (see `gateway folders`) at VPATH in LOGIN's tree."""
    from gateway.users.database import folder_admin

    async def work(engine: Any) -> None:
        await folder_admin.mount(engine, login, vpath, folder, read_only=read_only)

    run_with_engine(database_url, work)
    click.echo(f"folder {folder!r} mounted at {vpath} for {login!r}{' (read-only)' if read_only else ''}")


@users.command()
@database_url_option
@click.argument("login")
@click.argument("vpath", metavar="VPATH")
def unmount(database_url: str | None, login: str, vpath: str) -> None:
    """Remove the folder mounted at VPATH from LOGIN's tree (its files stay)."""
    from gateway.users.database import folder_admin

    async def work(engine: Any) -> None:
        await folder_admin.unmount(engine, login, vpath)

    run_with_engine(database_url, work)
    click.echo(f"folder at {vpath} unmounted for {login!r}")


def _as_dict(account: Any) -> dict[str, Any]:
    return {
        "login": account.login,
        "enabled": account.enabled,
        "has_password": account.has_password,
        "storage_root": account.storage_root,
        "home_path": account.home_path,
        "encoding": account.encoding,
        "limits": account.limits,
        "permissions": [
            {"path": p, "readable": r, "writable": w} for p, r, w in account.permissions
        ],
        "policy": account.policy,
        "sessions": account.sessions,
    }
