"""Why a login could not be decided, as exceptions the server maps to replies.

They carry no SQLAlchemy types, so the login handler can import them without the
database stack.
"""

from __future__ import annotations

__all__ = (
    "UserSourceUnavailable",
    "LoginRefused",
    "LoginsBusy",
    "SchemaMismatch",
    "MigrationsMissing",
    "AccountError",
)


class UserSourceUnavailable(Exception):
    """The place accounts come from cannot be reached right now (database down).

    The server answers 421 and closes the session: the client retries later, and the
    manager reconnects by itself once the database is back.
    """


class LoginsBusy(UserSourceUnavailable):
    """Too many password checks are running or queued; the server answers 421.

    A kind of :class:`UserSourceUnavailable`: callers that only know that one still
    end the session with 421 and let the client retry.
    """


class LoginRefused(Exception):
    """The password was right but the login may not proceed (a connection limit).

    ``str(exc)`` is the reply text; the server answers 530.
    """


class SchemaMismatch(RuntimeError):
    """The database schema is not the revision this code was written for."""


class MigrationsMissing(SchemaMismatch):
    """The Alembic history is not where it should be, so the schema cannot be checked.

    A kind of :class:`SchemaMismatch`: whoever handles a schema that cannot be served
    (a start refused, a login answered 421) handles this one the same way.
    """


class AccountError(ValueError):
    """An operator's request cannot be done: duplicate login, unknown user, bad value."""
