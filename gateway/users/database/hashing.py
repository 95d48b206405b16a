"""Password hashing: argon2id only, with the cost chosen by configuration.

Verification runs in worker threads of its own (argon2-cffi releases the GIL), never in
asyncio's default executor: storage work (fsync, commits) runs there, and a login storm
must not queue it behind a hundred hashes.  The pool is bounded and so is its queue:
past it, a login is refused with :class:`LoginsBusy` (the server answers 421).  Unknown logins are verified
against a dummy hash made with the same parameters, so they cost the same time as a
wrong password for a real account.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from gateway.users.database.errors import LoginsBusy

__all__ = ("HashPool", "HashSettings", "LoginsBusy", "PasswordHashing")

T = TypeVar("T")


def default_workers() -> int:
    """Half the cores (at least one): the rest stay for transfers and storage."""
    return max(1, (os.cpu_count() or 2) // 2)


class HashPool:
    """A bounded thread pool for hashing, with a bounded number of waiting jobs.

    ``workers`` hashes run at once; up to ``max_waiting`` more wait their turn; any
    further one raises :class:`LoginsBusy` at once instead of queuing without end.
    """

    def __init__(self, workers: int | None = None, max_waiting: int = 64) -> None:
        self.workers = workers or default_workers()
        if self.workers < 1 or max_waiting < 0:
            raise ValueError("workers must be >= 1 and max_waiting >= 0")
        self.max_waiting = max_waiting
        self._executor: ThreadPoolExecutor | None = None
        #: jobs submitted and not finished (running + waiting); touched on the loop only
        self.in_flight = 0

    @property
    def waiting(self) -> int:
        """Jobs queued behind the running ones."""
        return max(0, self.in_flight - self.workers)

    async def run(self, func: Callable[..., T], *args: object) -> T:
        if self.in_flight >= self.workers + self.max_waiting:
            raise LoginsBusy("too many logins in progress; try again later")
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="gateway-hash")
        future = asyncio.get_running_loop().run_in_executor(self._executor, func, *args)
        self.in_flight += 1
        try:
            # a cancelled login still lets its hash finish: the slot is free only then
            return await asyncio.shield(future)
        finally:
            if future.done():
                self.in_flight -= 1
            else:
                future.add_done_callback(self._done)

    def _done(self, _future: object) -> None:
        self.in_flight -= 1

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


@dataclass(frozen=True)
class HashSettings:
    """argon2id cost parameters (argon2-cffi's RFC 9106 low-memory profile by default)."""

    time_cost: int = 3
    memory_cost: int = 65536  # KiB
    parallelism: int = 4

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> HashSettings:
        """Settings from ``GATEWAY_ARGON2_TIME_COST``/``_MEMORY_COST``/``_PARALLELISM``.

        Lets operators (and the test suite) choose the cost without code changes; the
        defaults stay strong.
        """
        env = os.environ if environ is None else environ
        default = cls()

        def read(name: str, fallback: int) -> int:
            text = env.get(f"GATEWAY_ARGON2_{name}")
            if not text:
                return fallback
            try:
                value = int(text)
            except ValueError:
                raise ValueError(f"GATEWAY_ARGON2_{name} must be an integer, not {text!r}") from None
            if value < 1:
                raise ValueError(f"GATEWAY_ARGON2_{name} must be at least 1")
            return value

        return cls(
            time_cost=read("TIME_COST", default.time_cost),
            memory_cost=read("MEMORY_COST", default.memory_cost),
            parallelism=read("PARALLELISM", default.parallelism),
        )


class PasswordHashing:
    """Hash, verify and decide about rehashing with one set of parameters."""

    def __init__(self, settings: HashSettings | None = None, *, pool: HashPool | None = None) -> None:
        self.settings = settings or HashSettings.from_env()
        self.pool = pool or HashPool()
        self._hasher = PasswordHasher(
            time_cost=self.settings.time_cost,
            memory_cost=self.settings.memory_cost,
            parallelism=self.settings.parallelism,
            type=Type.ID,
        )
        # Random, never matches: the stand-in for accounts that do not exist.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(24))

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches; ``None`` means "no such account" and costs the same."""
        target = self._dummy_hash if password_hash is None else password_hash
        try:
            ok = self._hasher.verify(target, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return ok and password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the stored hash was made with other parameters (or another type)."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except (InvalidHashError, ValueError):
            return True

    async def verify_async(self, password_hash: str | None, password: str) -> bool:
        """:raises LoginsBusy: the hashing pool and its queue are full"""
        return await self.pool.run(self.verify, password_hash, password)

    async def hash_async(self, password: str) -> str:
        return await self.pool.run(self.hash, password)
