"""The one dispatcher step that refuses a command before its handler runs.

Every check comes from the command's entry in ``gateway.protocol.commands``: TLS
before login, login, a required argument, the command it continues (PASS after
USER, RNTO after RNFR), the user's right on the path (a malformed path is a 501),
the account's file rules on that path (a name it may not create: 553; a hidden one:
550, as if missing), and a prepared data channel and its protection.  No storage
request is made here, but for one case: RNTO to a name outside an account's allowed
file names asks whether the source is a directory (allowed names govern files).
Handlers hold only what is particular to them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

from gateway.protocol.commands import CommandInfo, path_argument
from gateway.server.filepolicy import path_refusal
from gateway.server.session import Session

__all__ = ("NO_DATA_CHANNEL", "data_refusal", "needs_permission_check", "refusal", "refusal_now")

NO_DATA_CHANNEL = "bad sequence of commands (use PASV, EPSV, PORT or EPRT first)"

_SEQUENCE_TEXT = {
    "user": "bad sequence of commands (use USER first)",
    "rename_from": "bad sequence of commands (use RNFR first)",
}

GetPaths = Callable[[Session, Any], tuple[Any, PurePosixPath]]


def refusal_now(session: Session, info: CommandInfo, rest: str, *, require_tls: bool) -> tuple[str, str] | None:
    """The refusals that need no lookup (all but the permission): most commands are
    decided here without creating a coroutine."""
    login = session.login
    if info.tls_login and require_tls and not session.tls:
        return "530", "TLS required: use AUTH TLS first"
    needs_login = info.needs_login
    if needs_login == "with_argument":
        needs_login = bool(rest.strip())
    if needs_login and not login.logged:
        # 503, as aioftp answers: USER and PASS must come first (RFC 959's "bad
        # sequence of commands"); the TLS refusal above stays 530
        return "503", "bad sequence of commands (not logged in: use USER and PASS first)"
    if info.arg == "required" and not rest.strip():
        return "501", f"{info.name} needs an argument"
    if info.sequence == "user" and login.user is None:
        return "503", _SEQUENCE_TEXT["user"]
    if info.sequence == "rename_from" and login.rename_from is None:
        return "503", _SEQUENCE_TEXT["rename_from"]
    return None


def needs_permission_check(session: Session, info: CommandInfo) -> bool:
    return info.permission is not None and session.login.logged


async def refusal(
    session: Session, info: CommandInfo, rest: str, *, require_tls: bool, get_paths: GetPaths
) -> tuple[str, str] | None:
    """The reply refusing this command now, or None when its handler may run."""
    refused = refusal_now(session, info, rest, require_tls=require_tls)
    if refused is not None:
        return refused
    if needs_permission_check(session, info):
        argument = path_argument(info, rest)
        if argument is not None:
            _real, virtual = get_paths(session, argument)
            permission = await session.login.user.get_permissions(virtual)
            allowed = permission.readable if info.permission == "read" else permission.writable
            if not allowed:
                return "550", "permission denied"
            refused = await path_refusal(session, info.name, rest, virtual)
            if refused is not None:
                return refused
    return data_refusal(session, info, require_tls=require_tls)


def data_refusal(session: Session, info: CommandInfo, *, require_tls: bool) -> tuple[str, str] | None:
    if info.data:
        if not session.data.prepared:
            return "503", NO_DATA_CHANNEL
        if require_tls and session.data.protection != "P":
            return "521", "data connections must be protected: send PBSZ 0 and PROT P first"
    return None
