"""HMAC-SHA256 signatures of event bodies, as receivers verify them.

The header is ``X-Gateway-Signature: sha256=<hex>``: the HMAC of the raw body with the
action's secret.  A receiver computes the same over the bytes it got and compares in
constant time (:func:`verify`); the event id is in ``X-Gateway-Event-Id`` too, so a
receiver can drop a repeat before parsing the body.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ("EVENT_ID_HEADER", "SIGNATURE_HEADER", "sign", "verify")

SIGNATURE_HEADER = "X-Gateway-Signature"
EVENT_ID_HEADER = "X-Gateway-Event-Id"
_PREFIX = "sha256="


def sign(secret: str | bytes, body: bytes) -> str:
    """The header value for ``body``: ``sha256=`` and the lowercase hex HMAC."""
    key = secret.encode() if isinstance(secret, str) else secret
    return _PREFIX + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify(secret: str | bytes, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is the signature of ``body`` under ``secret``."""
    if not header or not header.startswith(_PREFIX):
        return False
    return hmac.compare_digest(sign(secret, body), header.strip())
