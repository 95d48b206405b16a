"""Giving up root once the listeners are bound (port 21 and 990 need it, nothing else does)."""

from __future__ import annotations

import grp
import os
import pwd

__all__ = ("account_ids", "drop_privileges")


def account_ids(user: str, group: str | None = None) -> tuple[int, int]:
    """(uid, gid) of a system user, with its primary group unless ``group`` is given."""
    entry = pwd.getpwnam(user)
    gid = grp.getgrnam(group).gr_gid if group else entry.pw_gid
    return entry.pw_uid, gid


def drop_privileges(user: str, group: str | None = None) -> None:
    """Become ``user`` (and ``group``) for good: supplementary groups, gid, then uid.

    :raises PermissionError: the process may not switch (it was not started as root)
    """
    uid, gid = account_ids(user, group)
    if os.getuid() == uid and os.getgid() == gid:
        return
    os.setgroups(os.getgrouplist(user, gid))
    os.setgid(gid)
    os.setuid(uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise PermissionError(f"still running as uid {os.geteuid()} after switching to {user!r}")
