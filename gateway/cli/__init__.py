"""The ``gateway`` command: one click group, subcommands loaded when used.

Subcommands are listed in ``SUBCOMMANDS`` as ``"module:attribute"`` and imported only
when invoked (or for ``--help``), so ``gateway users`` does not load the server and
``gateway serve`` does not load SQLAlchemy unless it needs it.  Adding a command is
one line there.

The group is also the boundary where failures become one ``Error:`` line and a
non-zero exit: commands raise :class:`click.ClickException` with what is wrong and
what to do, and anything else that escapes is reported as unexpected.  Python
tracebacks are shown only with ``gateway --debug``, including the one behind a
``ClickException`` that was raised while handling another exception.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import threading
import traceback
from typing import Any

import click

__all__ = ("main", "SUBCOMMANDS")

#: name -> "module:attribute" of a click command or group
SUBCOMMANDS: dict[str, str] = {
    "users": "gateway.cli.users:users",
    "folders": "gateway.cli.folders:folders",
    "db": "gateway.cli.db:db",
    "events": "gateway.cli.events:events",
    "serve": "gateway.cli.serve:serve",
    "hash-password": "gateway.cli.serve:hash_password",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(super().list_commands(ctx))
        names.update(name for name in SUBCOMMANDS if self._available(name))
        return sorted(names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None or cmd_name not in SUBCOMMANDS:
            return command
        if not self._available(cmd_name):
            return None
        module_name, _, attribute = SUBCOMMANDS[cmd_name].partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(command, click.Command)
        return command

    @staticmethod
    def _available(name: str) -> bool:
        module_name = SUBCOMMANDS[name].partition(":")[0]
        return importlib.util.find_spec(module_name) is not None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            cause = exc.__cause__ or exc.__context__
            if ctx.meta.get(DEBUG_KEY) and cause is not None:
                traceback.print_exception(cause)
            raise
        except (click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            if ctx.meta.get(DEBUG_KEY):
                raise
            text = str(exc).strip()
            reason = f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
            raise click.ClickException(
                f"unexpected failure ({reason}); run the command again with "
                "'gateway --debug ...' to see where, and report it"
            ) from None


#: ``ctx.meta`` key set by ``gateway --debug``.
DEBUG_KEY = "gateway.debug"


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gateway", prog_name="gateway")
@click.option("--debug", is_flag=True,
              help="Show the Python traceback behind a failure (for bug reports).")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """gateway: an FTP server in front of local disk, memory, S3 and fsspec storage."""
    ctx.meta[DEBUG_KEY] = debug
    if not debug:
        # a library's worker thread failing after the command already reported its
        # one-line error (aiosqlite answering a closed event loop) stays quiet
        threading.excepthook = _quiet_thread_failure


def _quiet_thread_failure(args: threading.ExceptHookArgs) -> None:
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger("gateway").debug("background thread %s failed: %r", name, args.exc_value)
