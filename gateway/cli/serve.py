"""``gateway serve`` and ``gateway hash-password``."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from gateway.cli._common import gateway_command

__all__ = ("hash_password", "serve")


def _install_uvloop(tls: bool) -> str:
    """uvloop when installed, except for TLS listeners.

    uvloop's TLS transport can drop decrypted bytes it still holds for a paused
    reader when the peer closes, so a TLS upload under backpressure could land
    truncated; asyncio's own transport delivers them.
    """
    if tls:
        return "asyncio (TLS configured)"
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


@click.command()
@click.option("-c", "--config", "config_file",
              # readable=False: the loader says what is wrong with the file, in one line
              type=click.Path(dir_okay=False, readable=False, path_type=Path),
              help="TOML configuration file (also GATEWAY_CONFIG).")
@click.option("--host", help="Address of the first listener (also GATEWAY_HOST).")
@click.option("--port", help="Port of the first listener (also GATEWAY_PORT).")
@click.option("--root", help="Default storage root, a path or URL (also GATEWAY_ROOT).")
@click.option("--database-url", help="Accounts database URL (also GATEWAY_DATABASE_URL).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              help="Log level (also GATEWAY_LOGGING_LEVEL).")
@click.option("--log-format", type=click.Choice(["text", "json"]),
              help="Log format (also GATEWAY_LOGGING_FORMAT).")
@click.option("--check", is_flag=True,
              help="Validate the configuration, database and storage, then exit (0: all good).")
@click.option("--repair", is_flag=True,
              help="Clean up what killed uploads left in every storage root (partial files, "
                   "interrupted appends rolled back, stale S3 multipart uploads), print what "
                   "was done, then exit; after the checks with --check.  Safe while servers "
                   "run: only temporaries no upload holds, older than [storage] "
                   "stale_temporary_age, are touched.")
def serve(config_file: Path | None, host: str | None, port: str | None, root: str | None,
          database_url: str | None, log_level: str | None, log_format: str | None,
          check: bool, repair: bool) -> None:
    """Run the FTP server.

    With no configuration it serves 127.0.0.1:2121 with accounts in the SQLite file
    gateway.sqlite3 (created on first start) and files under var/ftp.  SIGTERM or
    SIGINT stop it gracefully; SIGHUP reloads the certificate and the configuration.
    """
    from gateway.config import ConfigError, load_settings
    from gateway.observe.logs import configure_logging
    from gateway.service.build import StartError

    flags = {
        "host": host, "port": port, "root": root, "database_url": database_url,
        "log_level": log_level, "log_format": log_format,
    }
    try:
        settings = load_settings(config_file, flags=flags)
    except ConfigError as exc:
        raise click.ClickException(f"bad configuration: {exc}") from None
    try:
        configure_logging(settings.logging.level, settings.logging.format, settings.logging.file)
    except OSError as exc:
        raise click.ClickException(
            f"[logging] file: cannot write {settings.logging.file}: {exc.strerror or exc}"
        ) from None
    if check or repair:
        from gateway.service.check import check as run_check
        from gateway.service.check import repair_storage

        ok = True
        if check:
            ok = asyncio.run(run_check(settings, report=click.echo))
        if repair:
            if settings.logging.file is None:
                import logging

                # what it does is printed below; a log file, if any, records it as well
                logging.getLogger("backends.recovery").disabled = True
            ok = asyncio.run(repair_storage(settings, report=click.echo)) and ok
        sys.exit(0 if ok else 1)
    import logging

    from gateway.server.gctuning import tune_for_serving
    from gateway.service.run import serve as run_serve

    tune_for_serving()
    loop_name = _install_uvloop(tls=settings.tls.configured)
    logging.getLogger("gateway").info("event loop: %s", loop_name)
    try:
        asyncio.run(run_serve(
            settings,
            announce=lambda text: click.echo(text, err=True),
            reload=lambda: load_settings(config_file, flags=flags),
            admin_command=gateway_command(),
        ))
    except StartError as exc:
        raise click.ClickException(str(exc)) from None


@click.command("hash-password")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def hash_password(password_stdin: bool) -> None:
    """Print the argon2id hash of a password, for password_hash in [[users.static]]."""
    from gateway.users.database.hashing import PasswordHashing

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise click.ClickException("empty password")
    click.echo(PasswordHashing().hash(password))
