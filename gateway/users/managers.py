"""Where users come from: the manager interface and the in-memory manager."""

from __future__ import annotations

import abc
import copy
import enum
import hmac
import weakref
from collections.abc import Iterable
from typing import Any

from gateway.common import AvailableConnections
from gateway.users.model import User

__all__ = ("AbstractUserManager", "MemoryUserManager")


class AbstractUserManager(abc.ABC):
    """Looks users up for USER and checks passwords for PASS.

    :param timeout: seconds a lookup may take (applied by the server)
    """

    class GetUserResponse(enum.Enum):
        """How the USER command ends: logged in, password needed, or refused."""

        OK = "ok"
        PASSWORD_REQUIRED = "password_required"
        ERROR = "error"

    def __init__(self, *, timeout: float | None = None) -> None:
        self.timeout = timeout

    @abc.abstractmethod
    async def get_user(self, login: str) -> tuple[GetUserResponse, User | None, str]:
        """(response, user or None, text for the reply) for a USER command."""

    @abc.abstractmethod
    async def authenticate(self, user: User, password: str) -> bool:
        """Whether ``password`` is ``user``'s password."""

    async def logged_in(self, user: User) -> User:
        """Called once a session's password was accepted; returns the user it holds now.

        A manager that takes connection slots only after a successful password takes
        it here (``notify_logout`` later gets the returned user) and raises
        ``LoginRefused`` when the limit is reached.  The default keeps aioftp's contract:
        nothing to take, the user is the one ``get_user`` gave.
        """
        return user

    async def login_refused(self, user: User) -> None:  # noqa: B027 - optional hook
        """The password was right, but the server refuses the login all the same (the
        client's address is not allowed for the account).

        Give back what :meth:`authenticate` took for it (a connection slot); the session
        keeps ``user`` as after a wrong password, and :meth:`notify_logout` still follows
        when it ends.  The default takes nothing in ``authenticate``, so has nothing to do.
        """

    async def notify_logout(self, user: User) -> None:  # noqa: B027 - optional hook
        """Called once when a session of ``user`` ends, to free what get_user took."""


class MemoryUserManager(AbstractUserManager):
    """A fixed set of users held in memory; the server's default.

    With no users the server allows anonymous read/write on ``/`` (aioftp default).
    Each user has its own ``maximum_connections`` counter.  A slot is taken only by a
    completed login: at USER for a user without a password (the login is complete
    there, as in aioftp), after the right password (:meth:`logged_in`) otherwise, so
    USER lines alone cannot lock a user out.  Between USER and PASS the session holds
    a copy of the user that owns no slot; :meth:`notify_logout` of it frees nothing.
    """

    def __init__(self, users: Iterable[User] | None, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.users: list[User] = list(users) if users else [User()]
        self.available_connections: dict[User, AvailableConnections] = {
            user: AvailableConnections(user.maximum_connections) for user in self.users
        }
        #: session copies handed out at USER -> the configured user they stand for
        self._pending: weakref.WeakKeyDictionary[User, User] = weakref.WeakKeyDictionary()

    def _find(self, login: str) -> User | None:
        anonymous = None
        for user in self.users:
            if user.login == login:
                return user
            if user.login is None and anonymous is None:
                anonymous = user
        return anonymous

    async def get_user(
        self, login: str
    ) -> tuple[AbstractUserManager.GetUserResponse, User | None, str]:
        """A named user wins over the anonymous one, which accepts any login."""
        response = self.GetUserResponse
        user = self._find(login)
        if user is None:
            return response.ERROR, None, "no such username"
        if user.login is not None and user.password is not None:
            if user.maximum_connections is None:
                return response.PASSWORD_REQUIRED, user, "password required"
            # no slot before the password: a copy stands for the user until then
            pending = copy.copy(user)
            self._pending[pending] = user
            return response.PASSWORD_REQUIRED, pending, "password required"
        connections = self._connections(user)
        if connections.locked():
            name = user.login if user.login is not None else login
            return response.ERROR, user, f"too much connections for {name!r}"
        info = "anonymous login" if user.login is None else "login without password"
        connections.acquire()
        return response.OK, user, info

    def _connections(self, user: User) -> AvailableConnections:
        connections = self.available_connections.get(user)
        if connections is None:  # user added to self.users after construction
            connections = self.available_connections[user] = AvailableConnections(
                user.maximum_connections
            )
        return connections

    async def logged_in(self, user: User) -> User:
        """The right password: the session takes a slot of the configured user.

        :raises LoginRefused: the user's ``maximum_connections`` are all in use
        """
        from gateway.users.database.errors import LoginRefused

        real = self._pending.pop(user, None)
        if real is None:
            return user  # a user get_user did not hand out as pending: aioftp's way
        connections = self._connections(real)
        if connections.locked():
            raise LoginRefused(f"too much connections for {real.login!r}")
        connections.acquire()
        return real

    async def authenticate(self, user: User, password: str) -> bool:
        """Constant-time comparison, so response timing does not reveal the password."""
        expected = user.password
        if expected is None or password is None:
            return expected is password
        return hmac.compare_digest(
            expected.encode("utf-8", "surrogatepass"),
            password.encode("utf-8", "surrogatepass"),
        )

    async def notify_logout(self, user: User) -> None:
        """Free the user's connection slot; a second call for one login is harmless."""
        connections = self.available_connections.get(user)
        if connections is None:
            return
        try:
            connections.release()
        except ValueError:
            pass
