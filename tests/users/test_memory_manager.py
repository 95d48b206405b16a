"""User, Permission and MemoryUserManager with aioftp 0.28 semantics."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from gateway.errors import PathIsNotAbsolute
from gateway.users import AbstractUserManager, MemoryUserManager, Permission, User

Response = AbstractUserManager.GetUserResponse


# ------------------------------------------------------------------ Permission / User


def test_permission_defaults_and_repr() -> None:
    p = Permission()
    assert p.path == PurePosixPath("/")
    assert p.readable and p.writable
    assert repr(Permission("/pub", writable=False)) == (
        "Permission('/pub', readable=True, writable=False)"
    )


def test_permission_is_parent_compares_whole_parts() -> None:
    p = Permission("/foo")
    assert p.is_parent(PurePosixPath("/foo"))
    assert p.is_parent(PurePosixPath("/foo/bar/baz"))
    assert not p.is_parent(PurePosixPath("/foobar"))
    assert not p.is_parent(PurePosixPath("/"))
    assert Permission("/").is_parent(PurePosixPath("/anything"))


def test_permission_path_can_be_reassigned() -> None:
    p = Permission("/a")
    p.path = "/b"  # type: ignore[assignment]
    assert p.path == PurePosixPath("/b")
    assert p.is_parent(PurePosixPath("/b/c")) and not p.is_parent(PurePosixPath("/a"))


def test_user_defaults() -> None:
    u = User()
    assert u.login is None and u.password is None
    assert u.base_path == Path(".")
    assert u.home_path == PurePosixPath("/")
    assert len(u.permissions) == 1 and u.permissions[0].path == PurePosixPath("/")
    assert u.maximum_connections is None
    assert u.read_speed_limit is None and u.write_speed_limit_per_connection is None


def test_user_paths() -> None:
    assert User(base_path="/srv/ftp").base_path == Path("/srv/ftp")
    assert isinstance(User(base_path="/srv/ftp").base_path, Path)
    assert User(base_path="s3://bucket/prefix").base_path == "s3://bucket/prefix"
    assert User(base_path="memory://").base_path == "memory://"
    assert User(home_path="/home/x").home_path == PurePosixPath("/home/x")
    with pytest.raises(PathIsNotAbsolute):
        User(home_path="relative")


def test_user_repr_hides_password() -> None:
    text = repr(User("alice", "s3cret"))
    assert "alice" in text and "s3cret" not in text


def test_users_hash_by_identity() -> None:
    a, b = User("x"), User("x")
    assert a != b
    assert len({a, b}) == 2


async def test_get_permissions_nearest_parent_wins() -> None:
    user = User(
        permissions=[
            Permission("/", readable=False, writable=False),
            Permission("/pub", readable=True, writable=False),
            Permission("/pub/incoming", readable=False, writable=True),
            Permission("/foo", readable=True, writable=True),
        ]
    )

    async def rights(path: str) -> tuple[bool, bool]:
        p = await user.get_permissions(path)
        return p.readable, p.writable

    assert await rights("/") == (False, False)
    assert await rights("/etc") == (False, False)
    assert await rights("/pub") == (True, False)
    assert await rights("/pub/a/b") == (True, False)
    assert await rights("/pub/incoming") == (False, True)
    assert await rights("/pub/incoming/deep/file") == (False, True)
    assert await rights("/pubx") == (False, False)
    assert await rights("/foobar") == (False, False)  # sibling, not a child of /foo
    assert await rights("/foo/bar") == (True, True)
    assert await rights(PurePosixPath("/pub/incoming")) == (False, True)


async def test_get_permissions_order_does_not_matter() -> None:
    user = User(
        permissions=[
            Permission("/a/b", readable=False),
            Permission("/", writable=False),
            Permission("/a", writable=True),
        ]
    )
    assert (await user.get_permissions("/a/b/c")).path == PurePosixPath("/a/b")
    assert (await user.get_permissions("/a/x")).path == PurePosixPath("/a")
    assert (await user.get_permissions("/z")).path == PurePosixPath("/")


async def test_get_permissions_default_when_nothing_matches() -> None:
    user = User(permissions=[Permission("/only", readable=False, writable=False)])
    p = await user.get_permissions("/elsewhere")
    assert p.readable and p.writable  # aioftp's default Permission()


async def test_server_tutorial_example() -> None:
    guido = User(
        "Guido",
        "secret_password",
        home_path="/Guido",
        permissions=(
            Permission("/", readable=False, writable=False),
            Permission("/Guido", readable=True, writable=True),
        ),
    )
    anon = User(
        home_path="/anon",
        permissions=(
            Permission("/", readable=False, writable=False),
            Permission("/anon", readable=True),
        ),
    )
    assert guido.home_path == PurePosixPath("/Guido")
    p = await guido.get_permissions(guido.home_path / "file")
    assert (p.readable, p.writable) == (True, True)
    p = await guido.get_permissions("/")
    assert (p.readable, p.writable) == (False, False)
    p = await guido.get_permissions("/anon")
    assert (p.readable, p.writable) == (False, False)
    p = await anon.get_permissions("/anon/x")
    assert (p.readable, p.writable) == (True, True)  # writable defaults to True
    p = await anon.get_permissions("/Guido")
    assert (p.readable, p.writable) == (False, False)

    manager = MemoryUserManager([guido, anon])
    state, user, _ = await manager.get_user("Guido")
    assert (state, user) == (Response.PASSWORD_REQUIRED, guido)
    assert await manager.authenticate(guido, "secret_password")
    assert not await manager.authenticate(guido, "wrong")
    state, user, info = await manager.get_user("anybody")
    assert (state, user, info) == (Response.OK, anon, "anonymous login")


# ------------------------------------------------------------------ manager


def test_manager_is_a_user_manager() -> None:
    manager = MemoryUserManager(None, timeout=3)
    assert isinstance(manager, AbstractUserManager)
    assert manager.timeout == 3
    assert len(manager.users) == 1 and manager.users[0].login is None
    with pytest.raises(TypeError):
        AbstractUserManager()  # type: ignore[abstract]
    assert {r.name for r in Response} == {"OK", "PASSWORD_REQUIRED", "ERROR"}


async def test_default_manager_is_anonymous() -> None:
    manager = MemoryUserManager(None)
    state, user, info = await manager.get_user("whoever")
    assert state is Response.OK and user is manager.users[0] and info == "anonymous login"


async def test_named_user_wins_over_anonymous_in_any_order() -> None:
    anon, alice = User(), User("alice", "pw")
    for users in ([anon, alice], [alice, anon]):
        manager = MemoryUserManager(users)
        state, user, _ = await manager.get_user("alice")
        assert (state, user) == (Response.PASSWORD_REQUIRED, alice)
        state, user, _ = await manager.get_user("bob")
        assert (state, user) == (Response.OK, anon)


async def test_unknown_user_without_anonymous() -> None:
    manager = MemoryUserManager([User("alice", "pw")])
    assert await manager.get_user("bob") == (Response.ERROR, None, "no such username")


async def test_login_without_password() -> None:
    alice = User("alice")
    manager = MemoryUserManager([alice])
    assert await manager.get_user("alice") == (Response.OK, alice, "login without password")


async def test_logins_are_case_sensitive() -> None:
    manager = MemoryUserManager([User("alice", "pw")])
    state, _, _ = await manager.get_user("ALICE")
    assert state is Response.ERROR


async def test_authenticate() -> None:
    alice = User("alice", "pässword")
    manager = MemoryUserManager([alice])
    assert await manager.authenticate(alice, "pässword")
    assert not await manager.authenticate(alice, "password")
    assert not await manager.authenticate(alice, "")
    assert not await manager.authenticate(alice, "p\udce4ssword")  # undecodable bytes
    assert not await manager.authenticate(User("bob"), "anything")
    assert not await manager.authenticate(alice, None)  # type: ignore[arg-type]


async def test_connection_limit() -> None:
    """Slots go to completed logins only: USER alone never takes one (nor says "full")."""
    from gateway.users.database.errors import LoginRefused

    alice = User("alice", "pw", maximum_connections=2)
    manager = MemoryUserManager([alice])
    pending = []
    for _ in range(5):
        state, user, info = await manager.get_user("alice")
        assert state is Response.PASSWORD_REQUIRED and info == "password required"
        pending.append(user)
    await manager.notify_logout(pending[4])  # a session that never logged in frees nothing
    assert await manager.logged_in(pending[0]) is alice
    assert await manager.logged_in(pending[1]) is alice
    with pytest.raises(LoginRefused, match="too much connections for 'alice'"):
        await manager.logged_in(pending[2])
    await manager.notify_logout(alice)
    assert await manager.logged_in(pending[3]) is alice


async def test_connection_limit_is_per_user() -> None:
    alice, bob = User("alice", maximum_connections=1), User("bob", maximum_connections=1)
    manager = MemoryUserManager([alice, bob])
    assert (await manager.get_user("alice"))[0] is Response.OK
    assert (await manager.get_user("alice"))[0] is Response.ERROR
    assert (await manager.get_user("bob"))[0] is Response.OK


async def test_anonymous_connection_limit() -> None:
    manager = MemoryUserManager([User(maximum_connections=1)])
    assert (await manager.get_user("x"))[0] is Response.OK
    state, _, info = await manager.get_user("y")
    assert state is Response.ERROR and "too much connections" in info


async def test_notify_logout_never_raises() -> None:
    alice = User("alice", maximum_connections=1)
    manager = MemoryUserManager([alice])
    await manager.notify_logout(alice)  # nothing acquired yet
    await manager.get_user("alice")
    await manager.notify_logout(alice)
    await manager.notify_logout(alice)  # double logout
    await manager.notify_logout(User("stranger"))
    assert (await manager.get_user("alice"))[0] is Response.OK
    assert (await manager.get_user("alice"))[0] is Response.ERROR


async def test_unlimited_connections() -> None:
    manager = MemoryUserManager([User("alice")])
    for _ in range(100):
        assert (await manager.get_user("alice"))[0] is Response.OK


async def test_abstract_manager_notify_logout_default() -> None:
    class Manager(AbstractUserManager):
        async def get_user(self, login):  # type: ignore[no-untyped-def]
            return Response.OK, User(login), "ok"

        async def authenticate(self, user, password):  # type: ignore[no-untyped-def]
            return True

    manager = Manager()
    assert manager.timeout is None
    state, user, _ = await manager.get_user("x")
    assert await manager.notify_logout(user) is None
