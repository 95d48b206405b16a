"""Shared names of aioftp's ``common`` module: constants, ``Code``, decorators.

Streams and throttles live in ``gateway.streams`` and ``gateway.throttle``; they are
re-exported here because aioftp users import them from ``aioftp.common``.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import locale
import ssl
import threading
from collections.abc import Callable, Generator, Iterable
from contextlib import contextmanager
from typing import Any

from backends.base import AbstractAsyncLister
from gateway.streams import DEFAULT_BLOCK_SIZE, AsyncStreamIterator, StreamIO, ThrottleStreamIO
from gateway.throttle import StreamThrottle, Throttle

__all__ = (
    "with_timeout",
    "StreamIO",
    "Throttle",
    "StreamThrottle",
    "ThrottleStreamIO",
    "END_OF_LINE",
    "DEFAULT_BLOCK_SIZE",
    "wrap_with_container",
    "wrap_into_codes",
    "AsyncStreamIterator",
    "AsyncListerMixin",
    "AbstractAsyncLister",
    "async_enterable",
    "DEFAULT_PORT",
    "DEFAULT_USER",
    "DEFAULT_PASSWORD",
    "DEFAULT_ACCOUNT",
    "setlocale",
    "Code",
    "Connection",
    "AvailableConnections",
    "SSLSessionBoundContext",
)

END_OF_LINE = "\r\n"
DEFAULT_PORT = 21
DEFAULT_USER = "anonymous"
DEFAULT_PASSWORD = "anon@"
DEFAULT_ACCOUNT = ""
HALF_OF_YEAR_IN_SECONDS = 15778476
TWO_YEARS_IN_SECONDS = ((365 * 3 + 366) * 24 * 60 * 60) / 2


class Code(str):
    """A reply code that matches masks such as ``"2xx"``: ``x`` matches any digit."""

    def matches(self, mask: str) -> bool:
        mask = str(mask)
        if len(mask) != len(self):
            return False
        return all(m == c or not m.isdigit() for m, c in zip(mask, self, strict=True))


def wrap_with_container(o: Any) -> Any:
    """A lone string becomes a one-element tuple; anything else is returned as is."""
    if isinstance(o, str):
        return (o,)
    return o


def wrap_into_codes(t: str | int | Iterable[Any]) -> tuple[Code, ...]:
    """Turn codes given as strings or ints into a tuple of ``Code``."""
    if isinstance(t, (str, int)):
        t = (t,)
    return tuple(Code(str(c)) for c in t)


def _timeout_wrapper(attribute: str) -> Callable:
    def decorator(f: Callable) -> Callable:
        @functools.wraps(f)
        async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            timeout = getattr(self, attribute, None)
            if timeout is None:
                return await f(self, *args, **kwargs)
            async with asyncio.timeout(timeout):
                return await f(self, *args, **kwargs)

        return wrapper

    return decorator


def with_timeout(name: Any) -> Callable:
    """Bound an async method by an attribute of its instance.

    ``@with_timeout`` uses ``self.timeout``; ``@with_timeout("path_timeout")`` uses the
    named attribute.  ``None`` means no limit.
    """
    if isinstance(name, str):
        return _timeout_wrapper(name)
    return _timeout_wrapper("timeout")(name)


def async_enterable(f: Callable) -> Callable:
    """Let a coroutine returning an async context manager be used as both
    ``await f()`` and ``async with f() as x``."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        class AsyncEnterableInstance:
            async def __aenter__(self) -> Any:
                self.context = await f(*args, **kwargs)
                return await self.context.__aenter__()

            async def __aexit__(self, *exc: Any) -> Any:
                return await self.context.__aexit__(*exc)

            def __await__(self) -> Generator[Any, None, Any]:
                return f(*args, **kwargs).__await__()

        return AsyncEnterableInstance()

    return wrapper


class AsyncListerMixin:
    """Awaiting a lister collects all of its items into a list."""

    async def _to_list(self) -> list:
        return [item async for item in self]  # type: ignore[attr-defined]  # a mixin for async iterators

    def __await__(self) -> Generator[Any, None, list[Any]]:
        return self._to_list().__await__()


_LOCALE_LOCK = threading.Lock()


@contextmanager
def setlocale(name: str) -> Generator[str, None, None]:
    """Switch the process locale for the duration of the block, serialized by a lock."""
    with _LOCALE_LOCK:
        saved = locale.setlocale(locale.LC_ALL)
        try:
            yield locale.setlocale(locale.LC_ALL, name)
        finally:
            locale.setlocale(locale.LC_ALL, saved)


class AvailableConnections:
    """A counter without blocking: ``acquire`` past zero raises ``ValueError``.

    ``value=None`` means unlimited.
    """

    def __init__(self, value: int | None = None) -> None:
        self.value = self.maximum_value = value

    def locked(self) -> bool:
        return self.value == 0

    def acquire(self) -> None:
        if self.value is None:
            return
        if self.value <= 0:
            raise ValueError("Too many acquires")
        self.value -= 1

    def release(self) -> None:
        if self.value is None:
            return
        assert self.maximum_value is not None
        if self.value >= self.maximum_value:
            raise ValueError("Too many releases")
        self.value += 1


class Connection(collections.defaultdict):
    """aioftp's state container: a dict of futures with attribute access.

    ``connection.foo`` is ``connection["foo"].result()``; ``connection.future.foo`` is
    the future itself; assigning sets (or replaces) the future's result.  Kept for
    code written against aioftp; the server's sessions use plain attributes.
    """

    __slots__ = ("future",)

    class Container:
        def __init__(self, storage: Connection) -> None:
            self.storage = storage

        def __getattr__(self, name: str) -> asyncio.Future:
            return self.storage[name]

        def __delattr__(self, name: str) -> None:
            self.storage.pop(name)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(asyncio.Future)
        self.future = Connection.Container(self)
        for key, value in kwargs.items():
            self[key].set_result(value)

    def __getattr__(self, name: str) -> Any:
        if name in self:
            return self[name].result()
        raise AttributeError(f"{name!r} not in storage")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in Connection.__slots__:
            super().__setattr__(name, value)
            return
        if self[name].done():
            factory = self.default_factory
            assert factory is not None  # asyncio.Future, set in __init__
            self[name] = factory()
        self[name].set_result(value)

    def __delattr__(self, name: str) -> None:
        if name in self:
            self.pop(name)


class SSLSessionBoundContext:
    """An ``SSLContext`` stand-in that resumes a given TLS session.

    FTPS servers may require the data connection to resume the control
    connection's session; asyncio calls ``wrap_bio``/``wrap_socket`` on the context,
    so those gain ``session=``; everything else is delegated.
    """

    def __init__(self, context: ssl.SSLContext, session: ssl.SSLSession | None) -> None:
        self.context = context
        self.session = session

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        kwargs.setdefault("session", self.session)
        return self.context.wrap_socket(*args, **kwargs)

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        kwargs.setdefault("session", self.session)
        return self.context.wrap_bio(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.context, name)
