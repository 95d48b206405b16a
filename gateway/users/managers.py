"""Where users come from: the manager interface and the in-memory manager."""

from __future__ import annotations

import abc
import enum
import hmac
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

    async def notify_logout(self, user: User) -> None:  # noqa: B027 - optional hook
        """Called once when a session of ``user`` ends, to free what get_user took."""


class MemoryUserManager(AbstractUserManager):
    """A fixed set of users held in memory; the server's default.

    With no users the server allows anonymous read/write on ``/`` (aioftp default).
    Each user has its own ``maximum_connections`` counter; a slot is taken when USER
    succeeds and given back in :meth:`notify_logout`.
    """

    def __init__(self, users: Iterable[User] | None, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.users: list[User] = list(users) if users else [User()]
        self.available_connections: dict[User, AvailableConnections] = {
            user: AvailableConnections(user.maximum_connections) for user in self.users
        }

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
        connections = self.available_connections.get(user)
        if connections is None:  # user added to self.users after construction
            connections = self.available_connections[user] = AvailableConnections(
                user.maximum_connections
            )
        if connections.locked():
            name = user.login if user.login is not None else login
            return response.ERROR, user, f"too much connections for {name!r}"
        if user.login is None:
            state, info = response.OK, "anonymous login"
        elif user.password is None:
            state, info = response.OK, "login without password"
        else:
            state, info = response.PASSWORD_REQUIRED, "password required"
        connections.acquire()
        return state, user, info

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
