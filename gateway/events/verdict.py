"""A pre-upload hook's answer as an FTP reply.

The hook says no with an HTTP error status or a non-zero exit, and a text: the body's
or the output's first line.  That line may start with the reply code to use (``553
names must end in .jpg``), between 450 and 559; otherwise the refusal is
``default_code``.  The text is cut to one printable line, so the hook cannot inject
reply lines.
"""

from __future__ import annotations

import re

__all__ = ("refusal", "reply_text")

_CODE = re.compile(r"^(4[5-9]\d|5[0-5]\d)[ -](.*)$")
_LIMIT = 200


def reply_text(text: str, fallback: str) -> str:
    """The first line of ``text``, printable characters only, at most 200 of them."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    line = "".join(char for char in line if char.isprintable()).strip()
    return line[:_LIMIT] or fallback


def refusal(text: str, default_code: str = "550") -> tuple[str, str]:
    """(code, text) of the reply refusing an upload, from the hook's text."""
    line = reply_text(text, "")
    match = _CODE.match(line)
    if match:
        return match.group(1), match.group(2).strip() or "upload refused"
    return default_code, line or "upload refused"
