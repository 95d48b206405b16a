"""Password hashing: argon2id only, with the cost chosen by configuration.

Verification runs in a worker thread (argon2-cffi releases the GIL), so a login storm
uses the cores instead of stalling the event loop.  Unknown logins are verified
against a dummy hash made with the same parameters, so they cost the same time as a
wrong password for a real account.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ("HashSettings", "PasswordHashing")


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

    def __init__(self, settings: HashSettings | None = None) -> None:
        self.settings = settings or HashSettings.from_env()
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
        return await asyncio.to_thread(self.verify, password_hash, password)

    async def hash_async(self, password: str) -> str:
        return await asyncio.to_thread(self.hash, password)
