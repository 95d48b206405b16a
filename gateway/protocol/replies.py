"""Replies out: code plus text lines into RFC 959 reply lines and bytes.

Reply text often carries client-controlled data (file names, paths, the verb the client
sent).  A CR or LF in it would let the client, or whoever named a file, forge protocol
lines; every line is therefore made single-line here, at the one place replies are
built.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.protocol.commands import encode_text

__all__ = ("format_reply", "encode_reply", "quote_path", "one_line")

_CRLF_TO_SPACE = str.maketrans({"\r": " ", "\n": " "})
_PATH_TABLE = str.maketrans({'"': '""', "\r": "\0", "\n": "\0"})


def one_line(text: str) -> str:
    """Make ``text`` safe to put on a single reply line (CR and LF become spaces)."""
    if "\n" in text or "\r" in text:
        return text.translate(_CRLF_TO_SPACE)
    return text


def quote_path(path: str) -> str:
    """Quote a path for a 257 reply (``"<path>" created``).

    RFC 959 appendix II: an embedded ``"`` is doubled so clients can find the closing
    quote; CR and LF become NUL, the RFC's encoding of a newline inside a path name, so a
    directory named ``"x\\r\\n230 ok"`` cannot forge a reply line.
    """
    if '"' in path or "\n" in path or "\r" in path:
        path = path.translate(_PATH_TABLE)
    return f'"{path}"'


def format_reply(
    code: str,
    lines: str | list[str] | tuple[object, ...] | None = "",
    *,
    as_list: bool = False,
) -> list[str]:
    """Build the lines (without CRLF) of one reply, aioftp style.

    ``as_list=False``: every line but the last is ``CODE-text``, the last ``CODE text``.
    ``as_list=True``: the first is ``CODE-text``, middle lines are `` text`` (the leading
    space keeps a name such as ``"226 done"`` from ending the reply early, and is what
    MLST and STAT replies require), the last ``CODE text``.  An empty text gives
    ``"CODE "``: RFC 959 always has a space after a final code.
    """
    if lines is None:
        return [f"{code} "]
    if isinstance(lines, str):
        return [f"{code} {one_line(lines)}"]
    items = [one_line(item if isinstance(item, str) else str(item)) for item in lines]
    if not items:
        return [f"{code} "]
    last = items.pop()
    if as_list and items:
        head = items[0]
        out = [f"{code}-{head}"]
        out.extend(f" {item}" for item in items[1:])
    else:
        out = [f"{code}-{item}" for item in items]
    out.append(f"{code} {last}")
    return out


def encode_reply(lines: Iterable[str], encoding: str) -> bytes:
    """Join reply lines with CRLF (one after each line) and encode them losslessly."""
    return encode_text("\r\n".join(lines) + "\r\n", encoding)
