"""Questions about a user's permission rules as a whole, not just at one path.

``User.get_permissions`` answers "what may I do *here*" from the nearest rule above a
path.  Commands that act on a whole subtree at once (a rename moves everything below
the name, a recursive delete removes it) also need to know whether some rule *below*
the name is stricter than the rule at the name: otherwise a client can rename
``/data`` (read/write) away from its read-only ``/data/archive`` rule, change the
files where no rule protects them, and rename the tree back.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from gateway.users.model import Permission

__all__ = ("is_stricter", "stricter_rule_within")


def is_stricter(rule: Any, than: Any) -> bool:
    """Whether ``rule`` denies a right (readable or writable) that ``than`` grants."""
    return bool((than.readable and not rule.readable) or (than.writable and not rule.writable))


async def stricter_rule_within(user: Any, path: str | PurePosixPath) -> Permission | None:
    """The first rule at or below ``path`` stricter than the rule governing ``path``.

    ``path`` is the normalized absolute *virtual* path (the one passed to
    ``get_permissions``).  The governing rule is ``await user.get_permissions(path)``;
    every rule listed in ``user.permissions`` whose path is ``path`` or below it (whole
    parts compared: ``/data/archive2`` is not below ``/data/archive``) is replaced by
    the rule that actually governs its own path, so a duplicate shadowed by an earlier
    rule for the same path never counts.  The result is that effective rule when it
    denies a right the governing rule grants, else None.

    A user object without a ``permissions`` list (an aioftp-style class that only
    implements ``get_permissions``) cannot be inspected: the answer is None, i.e. the
    command behaves as before.
    """
    path = PurePosixPath(path)
    if not path.is_absolute() or ".." in path.parts:
        raise ValueError(f"expected a normalized absolute virtual path, got {str(path)!r}")
    rules = getattr(user, "permissions", None)
    if rules is None:
        return None
    governing = await user.get_permissions(path)
    prefix = path.parts
    depth = len(prefix)
    seen: set[PurePosixPath] = set()
    for rule in tuple(rules):
        rule_path = PurePosixPath(rule.path)
        if rule_path.parts[:depth] != prefix or rule_path in seen:
            continue
        seen.add(rule_path)
        effective = await user.get_permissions(rule_path)
        if is_stricter(effective, governing):
            return effective
    return None
