"""Which text encoding a session's file names travel in.

UTF-8 by default.  Old devices send names in their own code page (latin-1, cp1251,
GBK, Shift-JIS): a listener (``Server(encoding=...)``) or a user
(``User(encoding=...)``, or any user object with an ``encoding`` attribute) can say
which.  Decoding and encoding always use
surrogateescape (``gateway.protocol.commands``), so bytes that are not valid in the
encoding survive: the bytes a device sends are the bytes it lists back.

``OPTS UTF8 ON`` switches a session to UTF-8 (RFC 2640 clients announce themselves
this way); ``OPTS UTF8 OFF`` returns it to the user's or listener's encoding.
"""

from __future__ import annotations

import codecs

from gateway.server.session import Session

__all__ = ("check_encoding", "base_encoding", "apply_user_encoding", "set_utf8")


def check_encoding(name: str) -> str:
    """The canonical codec name; ValueError for an unknown one (a typo in a config
    must fail at start, not garble the first device's names)."""
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise ValueError(f"unknown encoding {name!r}") from None


def base_encoding(session: Session) -> str:
    """The user's encoding if it has one, else the listener's."""
    user = session.login.user
    user_encoding = getattr(user, "encoding", None) if user is not None else None
    return user_encoding or session.settings.encoding


def apply_user_encoding(session: Session, user: object) -> None:
    """Switch the session to ``user``'s encoding, if the user names one (on USER)."""
    user_encoding = getattr(user, "encoding", None)
    if user_encoding and not session.login.utf8_forced:
        session.login.encoding = check_encoding(user_encoding)


def set_utf8(session: Session, on: bool) -> str:
    """Apply OPTS UTF8 ON/OFF; return the encoding now in force."""
    login = session.login
    login.utf8_forced = on
    login.encoding = "utf-8" if on else base_encoding(session)
    return login.encoding
