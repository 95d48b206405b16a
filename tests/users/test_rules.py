"""stricter_rule_within: is any rule at or below a path stricter than the one governing it?"""

from __future__ import annotations

from pathlib import PurePosixPath
from types import SimpleNamespace

import pytest

import gateway
from gateway.users import Permission, User, is_stricter, stricter_rule_within
from gateway.users.database.accounts import DatabaseUser, account_from_rows

RW = {"readable": True, "writable": True}
RO = {"readable": True, "writable": False}
WO = {"readable": False, "writable": True}
NONE = {"readable": False, "writable": False}


def user(*rules: tuple[str, dict[str, bool]]) -> User:
    return User(permissions=[Permission(path, **rights) for path, rights in rules])


async def stricter(u: object, path: str) -> Permission | None:
    return await stricter_rule_within(u, PurePosixPath(path))


# ------------------------------------------------------------------ is_stricter


@pytest.mark.parametrize(
    ("rule", "than", "expected"),
    [
        (RW, RW, False),
        (RO, RO, False),
        (NONE, NONE, False),
        (RO, RW, True),  # loses writable
        (WO, RW, True),  # loses readable
        (NONE, RW, True),
        (RW, RO, False),  # grants more: not stricter
        (RW, NONE, False),
        (WO, RO, True),  # readable granted above, denied below
        (RO, WO, True),  # writable granted above, denied below
        (NONE, WO, True),
        (WO, NONE, False),
    ],
)
def test_is_stricter(rule: dict, than: dict, expected: bool) -> None:
    assert is_stricter(Permission("/x", **rule), Permission("/", **than)) is expected


# ------------------------------------------------------------------ the reported attack


async def test_rename_source_with_read_only_rule_below() -> None:
    u = user(("/data", RW), ("/data/archive", RO))
    found = await stricter(u, "/data")
    assert found is u.permissions[1]


async def test_reverse_target_with_read_only_rule_below() -> None:
    # /data does not have to exist: the rules alone decide
    u = user(("/", RW), ("/data/archive", RO))
    assert await stricter(u, "/data") is u.permissions[1]
    assert await stricter(u, "/build") is None


async def test_root_path_sees_every_rule() -> None:
    u = user(("/", RW), ("/a/b/c", RO))
    assert await stricter(u, "/") is u.permissions[1]


async def test_deeply_nested_rule_is_found() -> None:
    u = user(("/data", RW), ("/data/x/y/z/locked", NONE))
    assert await stricter(u, "/data") is u.permissions[1]
    assert await stricter(u, "/data/x") is u.permissions[1]
    assert await stricter(u, "/data/x/y/z") is u.permissions[1]
    assert await stricter(u, "/data/x/y/other") is None


# ------------------------------------------------------------------ nothing to report


async def test_plain_file_without_rules_below() -> None:
    u = user(("/data", RW), ("/data/archive", RO))
    assert await stricter(u, "/data/report.txt") is None
    assert await stricter(u, "/elsewhere/file.bin") is None


async def test_no_rules_at_all_default_user() -> None:
    u = User()  # one Permission("/") read/write
    assert await stricter(u, "/") is None
    assert await stricter(u, "/a/b") is None


async def test_no_rules_covering_the_path() -> None:
    # nothing covers /x: get_permissions falls back to read/write; nothing below either
    u = user(("/data", RO))
    assert await stricter(u, "/x") is None


async def test_equal_rules_below_are_not_stricter() -> None:
    u = user(("/data", RW), ("/data/a", RW), ("/data/a/b", RW))
    assert await stricter(u, "/data") is None


async def test_more_permissive_rule_below_is_not_stricter() -> None:
    u = user(("/", RO), ("/drop", WO), ("/drop/pub", RW))
    assert await stricter(u, "/drop") is None


async def test_rules_above_the_path_do_not_count() -> None:
    u = user(("/", NONE), ("/data", RW), ("/data/work", RW))
    assert await stricter(u, "/data/work") is None
    assert await stricter(u, "/data") is None


# ------------------------------------------------------------------ whole path parts


async def test_sibling_with_common_prefix_is_not_below() -> None:
    u = user(("/data", RW), ("/data/archive2", RO), ("/database", RO))
    assert await stricter(u, "/data/archive") is None
    assert await stricter(u, "/dat") is None
    assert await stricter(u, "/data/arch") is None
    # /database is not below /data, but /data/archive2 is
    assert await stricter(u, "/data") is u.permissions[1]


async def test_string_path_is_accepted() -> None:
    u = user(("/data", RW), ("/data/archive", RO))
    assert await stricter_rule_within(u, "/data") is u.permissions[1]
    assert await stricter_rule_within(u, "/data/") is u.permissions[1]


@pytest.mark.parametrize("path", ["data", "", "/data/../data", "../x"])
async def test_non_normalized_path_is_refused(path: str) -> None:
    with pytest.raises(ValueError):
        await stricter_rule_within(user(("/data", RW)), path)


# ------------------------------------------------------------------ a rule exactly at the path


async def test_rule_exactly_at_the_path_governs_itself() -> None:
    u = user(("/data", RW), ("/data/archive", RO))
    # renaming /data/archive is refused by its own rule (not writable), not by this check
    assert await stricter(u, "/data/archive") is None


async def test_rule_exactly_at_the_path_then_stricter_below() -> None:
    u = user(("/", RW), ("/data", RW), ("/data/archive", RO))
    assert await stricter(u, "/data") is u.permissions[2]


async def test_rule_exactly_at_a_file_path() -> None:
    u = user(("/data", RW), ("/data/report.txt", RO))
    assert await stricter(u, "/data/report.txt") is None  # governs itself
    assert await stricter(u, "/data") is u.permissions[1]


async def test_rule_at_the_path_stricter_than_its_parent_is_not_reported() -> None:
    # governing rule for /data is /data itself; the looser / above is irrelevant
    u = user(("/", RW), ("/data", RO))
    assert await stricter(u, "/data") is None


async def test_shadowed_duplicate_rule_does_not_count() -> None:
    # among rules for one path the first listed wins; the second never applies
    u = user(("/data", RW), ("/data/archive", RW), ("/data/archive", RO))
    assert await stricter(u, "/data") is None


async def test_shadowed_duplicate_the_other_way_round() -> None:
    u = user(("/data", RW), ("/data/archive", RO), ("/data/archive", RW))
    assert await stricter(u, "/data") is u.permissions[1]


async def test_shadowed_duplicate_at_the_path_itself() -> None:
    u = user(("/data", RW), ("/data", RO))
    assert await stricter(u, "/data") is None


# ------------------------------------------------------------------ readable vs writable


async def test_read_only_below_read_write() -> None:
    u = user(("/data", RW), ("/data/archive", RO))
    assert (await stricter(u, "/data")).path == PurePosixPath("/data/archive")


async def test_unreadable_below_read_write() -> None:
    u = user(("/data", RW), ("/data/secret", WO))
    assert (await stricter(u, "/data")).path == PurePosixPath("/data/secret")


async def test_unreadable_below_write_only_is_not_stricter() -> None:
    u = user(("/in", WO), ("/in/hidden", WO))
    assert await stricter(u, "/in") is None


async def test_read_only_below_write_only_is_stricter() -> None:
    u = user(("/in", WO), ("/in/fixed", RO))
    assert await stricter(u, "/in") is u.permissions[1]


async def test_first_listed_stricter_rule_is_returned() -> None:
    u = user(("/data", RW), ("/data/b", NONE), ("/data/a", RO))
    assert await stricter(u, "/data") is u.permissions[1]


async def test_looser_intermediate_rule_does_not_hide_a_stricter_deeper_one() -> None:
    u = user(("/data", RW), ("/data/pub", RW), ("/data/pub/locked", RO))
    assert await stricter(u, "/data") is u.permissions[2]


async def test_permissions_tuple_is_accepted() -> None:
    u = user(("/data", RW), ("/data/archive", RO))
    u.permissions = tuple(u.permissions)  # type: ignore[assignment]
    assert (await stricter(u, "/data")).path == PurePosixPath("/data/archive")


async def test_public_gateway_names() -> None:
    u = gateway.User(
        permissions=(
            gateway.Permission("/", readable=False, writable=False),
            gateway.Permission("/data"),
            gateway.Permission("/data/archive", writable=False),
        )
    )
    assert (await stricter(u, "/data")).path == PurePosixPath("/data/archive")
    assert await stricter(u, "/data/other") is None


# ------------------------------------------------------------------ database accounts


def db_user(*rules: tuple[str, bool, bool]) -> DatabaseUser:
    row = SimpleNamespace(
        id=7,
        login="alice",
        password_hash=None,
        enabled=True,
        home_path="/",
        storage_root="memory://",
        encoding=None,
        maximum_connections=None,
        read_speed_limit=None,
        write_speed_limit=None,
        read_speed_limit_per_connection=None,
        write_speed_limit_per_connection=None,
    )
    permission_rows = [SimpleNamespace(path=p, readable=r, writable=w) for p, r, w in rules]
    return account_from_rows(row, permission_rows, None).user.for_session()


async def test_database_user_read_only_below() -> None:
    u = db_user(("/data", True, True), ("/data/archive", True, False))
    assert isinstance(u, DatabaseUser)
    found = await stricter(u, "/data")
    assert found is not None and found.path == PurePosixPath("/data/archive")
    assert not found.writable


async def test_database_user_implicit_root_deny_is_above_not_below() -> None:
    # no "/" row: the account gets a deny-all rule at "/", which is above /data
    u = db_user(("/data", True, True))
    assert await stricter(u, "/data") is None
    # ... but it is *at* "/", and "/" itself is then governed by it: nothing stricter
    assert await stricter(u, "/") is None


async def test_database_user_rule_below_root_deny() -> None:
    # the implicit "/" deny-all governs "/": a read-only rule below denies nothing it grants
    u = db_user(("/data", True, True), ("/data/ro", True, False))
    assert await stricter(u, "/") is None
    found = await stricter(u, "/data")
    assert found is not None and found.path == PurePosixPath("/data/ro")


async def test_database_user_explicit_root_and_stricter_rule() -> None:
    u = db_user(("/", True, True), ("/data/archive", True, False))
    found = await stricter(u, "/data")
    assert found is not None and found.path == PurePosixPath("/data/archive")
    assert await stricter(u, "/data/archive2") is None


# ------------------------------------------------------------------ foreign user objects


class OnlyGetPermissions:
    """An aioftp-style user that computes rights itself and lists no rules."""

    async def get_permissions(self, path: PurePosixPath) -> Permission:
        return Permission(path, readable=True, writable=str(path) != "/data/archive")


async def test_foreign_user_without_permissions_list_is_unknown() -> None:
    assert await stricter(OnlyGetPermissions(), "/data") is None


class DuckUser:
    """Lists duck-typed rules (aioftp's Permission shape) and resolves them itself."""

    def __init__(self, rules: list[SimpleNamespace]) -> None:
        self.permissions = rules

    async def get_permissions(self, path: PurePosixPath) -> SimpleNamespace:
        matching = [r for r in self.permissions if PurePosixPath(path).is_relative_to(r.path)]
        return max(matching, key=lambda r: len(PurePosixPath(r.path).parts))


async def test_duck_typed_rules_are_inspected() -> None:
    rules = [
        SimpleNamespace(path=PurePosixPath("/"), readable=True, writable=True),
        SimpleNamespace(path=PurePosixPath("/data/archive"), readable=True, writable=False),
    ]
    u = DuckUser(rules)
    assert await stricter(u, "/data") is rules[1]
    assert await stricter(u, "/other") is None
