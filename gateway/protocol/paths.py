"""Virtual paths: what a client names, resolved purely and confined to its root.

Resolution is lexical and never touches storage, so ``..`` can never climb above the
virtual ``/`` whatever the backend.  Symlinks that point out of a local root are the
backend's to refuse (``PathEscapesRoot``); this module only guarantees that the
*name* stays inside.

Backslashes are ordinary characters, as on POSIX: ``a\\b`` is one name, not two.  A
backend on Windows must therefore refuse names containing ``\\`` itself.
"""

from __future__ import annotations

from pathlib import PurePath, PurePosixPath
from typing import TypeVar

__all__ = ("ROOT", "FORBIDDEN_NAME_CHARS", "NAME_REFUSED", "name_allowed", "resolve_virtual", "virtual_to_real", "is_within")

ROOT = PurePosixPath("/")

P = TypeVar("P", bound=PurePath)

#: Characters no name created through FTP may hold: CR and LF end a line in every
#: listing, reply and log reader; NUL ends a name on every POSIX system.
FORBIDDEN_NAME_CHARS = frozenset("\r\n\0")
#: The text of the 553 reply refusing such a name.
NAME_REFUSED = "file name not allowed: it holds a line break or NUL"


def name_allowed(argument: str) -> bool:
    """Whether a path argument may name something FTP creates or renames to (STOR,
    APPE, STOU, MKD, RNTO, MFMT...): refused (553) when it holds CR, LF or NUL.

    The whole argument is checked, not just its last part: MKD and some uploads make
    the missing parent directories too.
    """
    return not FORBIDDEN_NAME_CHARS.intersection(argument)


def resolve_virtual(cwd: PurePosixPath, argument: str) -> PurePosixPath:
    """The absolute, normalized virtual path a client argument names.

    Relative arguments are taken from ``cwd``; ``.``, empty parts and repeated
    slashes vanish; ``..`` drops one part and stops at ``/``.  NUL is refused because
    no storage accepts it and C-level APIs would silently truncate at it.
    """
    if "\0" in argument:
        raise ValueError("NUL in path")
    if not argument.startswith("/"):
        argument = f"{cwd}/{argument}"
    stack: list[str] = []
    for part in argument.split("/"):
        if not part or part == ".":
            continue
        if part == "..":
            if stack:
                stack.pop()
        else:
            stack.append(part)
    if not stack:
        return ROOT
    return PurePosixPath("/" + "/".join(stack))


def virtual_to_real(base: P, virtual: PurePosixPath) -> P:
    """Map a resolved virtual path under ``base`` (a ``Path`` or any ``PurePath``).

    Only paths from :func:`resolve_virtual` are accepted: a relative path or one with
    a ``..`` part raises ``ValueError`` instead of being joined, so the result is below
    ``base`` by construction.
    """
    parts = virtual.parts
    if not parts or parts[0] != "/":
        raise ValueError(f"virtual path must be absolute: {virtual!s}")
    if ".." in parts:
        raise ValueError(f"virtual path must be normalized: {virtual!s}")
    real = base.joinpath(*parts[1:])
    if not real.is_relative_to(base):
        # a name the base's flavour reads as anchored ("C:\\x" under a Windows base):
        # keep it a plain name below the base
        real = type(base)(f"{base}/{'/'.join(parts[1:])}")
        if not real.is_relative_to(base):
            raise ValueError(f"virtual path leaves its root: {virtual!s}")
    return real


def is_within(root: PurePath | str, path: PurePath | str) -> bool:
    """Whether ``path`` is ``root`` or below it, comparing whole parts (so ``/foo``
    does not contain ``/foobar``).  Lexical: resolve both first."""
    root_parts = PurePosixPath(root).parts if isinstance(root, str) else root.parts
    path_parts = PurePosixPath(path).parts if isinstance(path, str) else path.parts
    return path_parts[: len(root_parts)] == root_parts
