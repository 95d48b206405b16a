"""Why the accounts database failed, in one line an operator can act on.

SQLAlchemy's messages name the DBAPI class, span lines and end with a link; the
operator needs which database, what is wrong, and what to do.  The command line, the
server's start and ``gateway serve --check`` all say it the same way, from here.
"""

from __future__ import annotations

from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, DBAPIError

from gateway.users.database.errors import AccountError, SchemaMismatch
from gateway.users.database.urls import database_url, safe_url

__all__ = ("explain", "first_line")

#: The URL forms the gateway has drivers for, for messages about a URL it cannot use.
URL_FORMS = "postgresql://user:password@host/database or sqlite:///path/gateway.sqlite3"

#: PostgreSQL SQLSTATEs -> what to do.
_SQLSTATE_ADVICE = {
    "28P01": "check the user name and password in the URL",
    "28000": "check the user name in the URL and pg_hba.conf",
    "3D000": "create the database (createdb) or fix its name in the URL",
    "42501": "grant the role the privilege, or use a role that has it",
    "53300": "the server has no free connections: raise max_connections or retry later",
    "57P03": "the server is starting or shutting down: retry in a moment",
}


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text, or its class name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _cause(exc: BaseException) -> BaseException:
    """The driver's own exception under SQLAlchemy's wrapper."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return exc.orig
    return exc


def _is_unreachable(exc: BaseException) -> bool:
    seen = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (ConnectionError, TimeoutError)) or (
            isinstance(current, OSError) and not isinstance(current, PermissionError)
            and current.filename is None
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def explain(exc: BaseException, url: URL | str | None) -> str:
    """One line: which database, what went wrong, and what to do about it."""
    if isinstance(exc, (AccountError, SchemaMismatch)):
        return first_line(exc)
    try:
        parsed: URL | None = database_url(url)  # None: the environment's, or the default
    except (ArgumentError, ValueError):
        parsed = None
    where = safe_url(parsed) if parsed is not None else "(not parsable)"
    if isinstance(exc, ImportError):
        return (
            f"bad database URL {where}: its driver is not installed ({first_line(exc)}); "
            f"give a URL such as {URL_FORMS}"
        )
    if isinstance(exc, ArgumentError):
        return f"bad database URL {where}: {first_line(exc)}; give a URL such as {URL_FORMS}"
    cause = _cause(exc)
    reason = first_line(cause)
    is_sqlite = parsed is not None and parsed.get_backend_name() == "sqlite"
    if is_sqlite:
        path = (parsed.database if parsed is not None else None) or ":memory:"
        if isinstance(cause, PermissionError):
            return (
                f"permission denied on {cause.filename or path} (SQLite database {path}): "
                "let this user write it and its directory, or choose another --database-url"
            )
        if "unable to open database file" in reason:
            return (
                f"cannot open the SQLite database {path}: its directory must exist and this "
                "user must be allowed to read and write the file and the directory"
            )
        if "readonly database" in reason:
            return (
                f"the SQLite database {path} is read-only for this user: let it write the "
                "file and its directory"
            )
        if "not a database" in reason:
            return f"{path} is not a SQLite database: point the URL at the accounts file"
    sqlstate = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
    if sqlstate in _SQLSTATE_ADVICE:
        return f"database {where} refused: {reason}; {_SQLSTATE_ADVICE[sqlstate]}"
    if isinstance(cause, PermissionError):
        return (
            f"permission denied on {cause.filename or where} (database {where}): give this "
            "user access to it"
        )
    if _is_unreachable(exc):
        return (
            f"cannot reach the database {where}: {reason}; check that it is running and "
            "that the host and port in the URL are right"
        )
    return f"database {where} failed: {reason}"
