"""``User(mounts=...)``: a read-only folder is also non-writable in the user's rules."""

from __future__ import annotations

from pathlib import PurePosixPath

from gateway.users import Permission, User
from gateway.users.model import Mount


async def rights(user: User, path: str) -> tuple[bool, bool]:
    permission = await user.get_permissions(PurePosixPath(path))
    return permission.readable, permission.writable


async def test_read_only_mounts_add_non_writable_rules() -> None:
    mounts = [
        Mount("/shared", "shared", "memory://shared", read_only=True),
        Mount("/hidden/ro", "ro", "memory://ro", read_only=True),
        Mount("/rw", "rw", "memory://rw"),
    ]
    given = [
        Permission("/", readable=True, writable=True),
        Permission("/shared/drop", readable=True, writable=True),  # would allow writes below
        Permission("/hidden", readable=False, writable=False),
    ]
    user = User("alice", base_path="memory://alice", permissions=given, mounts=mounts)
    assert await rights(user, "/shared") == (True, False)
    assert await rights(user, "/shared/drop/x") == (True, False)
    assert await rights(user, "/hidden/ro/x") == (False, False)  # the nearest rule's reading
    assert await rights(user, "/rw/x") == (True, True)
    assert await rights(user, "/other") == (True, True)
    assert given[1].writable  # the caller's rules are not changed in place
    assert user.mounts == tuple(mounts)


async def test_a_stricter_rule_at_the_mount_stays() -> None:
    strict = Permission("/shared", readable=False, writable=False)
    user = User("bob", permissions=[Permission("/"), strict],
                mounts=[Mount("/shared", "s", "memory://s", read_only=True)])
    assert await rights(user, "/shared/x") == (False, False)
    assert [p.path for p in user.permissions].count(PurePosixPath("/shared")) == 1


def test_mount_options_stay_out_of_reprs() -> None:
    mount = Mount("/s", "s", "s3://b/s", {"aws_secret_access_key": "hunter2"})
    user = User("carol", base_path="memory://c", mounts=[mount])
    assert "hunter2" not in repr(mount) and "hunter2" not in repr(user)
    assert "mounts=" in repr(user)
