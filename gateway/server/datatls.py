"""TLS data connections that issue no TLS 1.3 session tickets.

Why: a TLS 1.3 server sends its NewSessionTicket messages right after the
handshake.  On an upload's data connection some clients (rclone, and the cases
behind pyftpdlib #602, curl #6149, ProFTPD #959) never read, and close the socket
with those ticket bytes unread; their kernel then answers with an RST that throws
away the tail of the upload still in flight, and the transfer ends in 426 or a
short file.  A data connection has no use for tickets anyway: the client resumes
the *control* connection's session on it (RFC 4217 section 10.2, and our
``require_tls_session_reuse``), so the control connection must keep issuing them.

Why this way: the data and control connections must share one ``SSLContext`` (the
data connection can only decrypt a ticket issued under the same context's ticket
keys), and Python exposes ``num_tickets`` only per context.  OpenSSL, however,
copies the context's ``num_tickets`` into each SSL object when it is created, so it
is enough for the context to say 0 during the creation of a data connection's SSL
object.  ``prepare_data_tls`` installs an ``SSLObject`` subclass on the context
whose ``_create`` (what ``SSLContext.wrap_bio`` calls, and asyncio's TLS transport
uses ``wrap_bio``) does that when a context variable marks the creation as a data
connection's; ``data_tls_scope`` sets the marker.

Where the marker must be set, so that it is the current context when the event
loop creates the SSL object: around the creation of a data listener (its accept
callbacks run in a copy of the context in force at ``create_server`` /
``start_server`` time), around ``loop.start_tls`` / ``StreamWriter.start_tls`` and
around ``loop.connect_accepted_socket(ssl=...)``.  uvloop creates the SSL object of
``start_tls`` in the context of the transport being upgraded, so a plain data
listener whose connections may later be upgraded must be created in the scope too.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import ssl
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ("data_tls_scope", "prepare_data_tls")

logger = logging.getLogger("gateway.server")

#: Set while the event loop may create the SSL object of a data connection.
_DATA_CONNECTION: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "gateway_data_tls_connection", default=False
)

#: The context's ``num_tickets`` is briefly 0 while a data connection's SSL object is
#: created; every creation through the hook takes this lock, so that a control
#: connection created meanwhile in another thread (another event loop sharing the
#: context) cannot be born without tickets.
_CREATION_LOCK = threading.Lock()

#: Marks the classes made here, so that preparing a context twice is a no-op.
_HOOK_MARK = "_gateway_ticketless_data"

_hooked_classes: dict[type[ssl.SSLObject], type[ssl.SSLObject]] = {}


def _hooked(base: type[ssl.SSLObject]) -> type[ssl.SSLObject]:
    """A subclass of ``base`` (whatever class the context already used, so that a
    caller's own ``sslobject_class`` keeps working) with the ticket switch."""
    cached = _hooked_classes.get(base)
    if cached is not None:
        return cached

    def _create(cls: type[ssl.SSLObject], *args: Any, **kwargs: Any) -> ssl.SSLObject:
        parent: Any = super(hooked, cls)
        context = kwargs.get("context")
        with _CREATION_LOCK:
            if not _DATA_CONNECTION.get() or not isinstance(context, ssl.SSLContext):
                return parent._create(*args, **kwargs)  # type: ignore[no-any-return]
            saved = context.num_tickets
            if saved == 0:
                return parent._create(*args, **kwargs)  # type: ignore[no-any-return]
            context.num_tickets = 0
            try:
                return parent._create(*args, **kwargs)  # type: ignore[no-any-return]
            finally:
                context.num_tickets = saved

    hooked: type[ssl.SSLObject] = type(
        f"TicketlessData{base.__name__}",
        (base,),
        {"_create": classmethod(_create), _HOOK_MARK: True, "__module__": __name__},
    )
    _hooked_classes[base] = hooked
    return hooked


def prepare_data_tls(context: ssl.SSLContext) -> bool:
    """Let ``context`` create data connections without session tickets.

    Returns whether it can: only a server context (``PROTOCOL_TLS_SERVER``) lets
    ``num_tickets`` be changed; on any other the data connections keep the context's
    tickets, which is what they did before.  Connections that are not data
    connections are left exactly as the context makes them, so the context a user
    gave us behaves as before for everything else.  Idempotent and cheap: call it
    before every data connection if the context might have been replaced.
    """
    if context.protocol is not ssl.PROTOCOL_TLS_SERVER:
        if not getattr(context, "_gateway_ticket_warning", False):
            context._gateway_ticket_warning = True  # type: ignore[attr-defined]
            logger.warning(
                "TLS context with protocol %s is not a server context (PROTOCOL_TLS_SERVER): "
                "TLS 1.3 data connections will carry session tickets, which some clients "
                "answer with a reset that truncates uploads",
                context.protocol.name,
            )
        return False
    current = context.sslobject_class
    if not getattr(current, _HOOK_MARK, False):
        context.sslobject_class = _hooked(current)
    return True


@contextlib.contextmanager
def data_tls_scope(context: ssl.SSLContext | None = None) -> Iterator[None]:
    """Mark the SSL objects created in this scope (and in the callbacks and tasks
    whose context is copied from it) as belonging to data connections.

    With ``context``, it is prepared first, so that no caller can set the marker on a
    context whose SSL objects would ignore it.  Without one (a clear-text data
    listener that may be upgraded later) only the marker is set; the upgrade's own
    scope prepares its context.
    """
    if context is not None:
        prepare_data_tls(context)
    token = _DATA_CONNECTION.set(True)
    try:
        yield
    finally:
        _DATA_CONNECTION.reset(token)
