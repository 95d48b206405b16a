"""Fixtures for the event tests: the service in this process or as ``gateway serve``
processes, a real HTTP receiver, the outbox read back from its database."""

from __future__ import annotations

import asyncio
import ftplib
import io
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.config import load_settings
from gateway.events import outbox
from gateway.service.run import Running, serve
from gateway.users.database.engine import create_engine
from gateway.users.database.hashing import PasswordHashing
from tests.events.receiver import Receiver
from tests.service.conftest import GATEWAY, GatewayProcess, base_env, run_cli
from tests.users_db.conftest import (  # noqa: F401  (fixtures)
    TEST_HASH,
    _new_pg_database,
    database_kind,
    database_url,
    postgres_admin_url,
    postgres_template,
    sqlite_template,
)

HOST = "127.0.0.1"
TIMEOUT = 30.0
PASSWORD = "pw"

__all__ = ("GATEWAY", "base_env", "run_cli")


def password_hash() -> str:
    """An argon2id hash of PASSWORD at the tests' cheap cost."""
    return PasswordHashing(TEST_HASH).hash(PASSWORD)


def write_config(tmp_path: Path, events: str, *, static: bool = True, name: str = "gateway.toml") -> Path:
    """A configuration with one listener on a free port, alice and bob as static users
    (or none: accounts from the database), and ``events`` appended."""
    users = ""
    if static:
        digest = password_hash()
        for login in ("alice", "bob"):
            users += f'\n[[users.static]]\nlogin = "{login}"\npassword_hash = "{digest}"\n'
    config = tmp_path / name
    config.write_text(f"""
[[listeners]]
host = "{HOST}"
port = 0

[users]
failure_delay = 0

[storage]
root = "{tmp_path / 'files'}"
{users}
{events}
""")
    return config


def login(port: int, user: str = "alice") -> ftplib.FTP:
    ftp = ftplib.FTP(timeout=TIMEOUT)
    ftp.connect(HOST, port)
    ftp.login(user, PASSWORD)
    return ftp


def upload(port: int, name: str, data: bytes, user: str = "alice") -> str:
    """STOR one file in a session of its own; the final reply."""
    ftp = login(port, user)
    try:
        return ftp.storbinary(f"STOR {name}", io.BytesIO(data))
    finally:
        ftp.close()


async def in_thread(func: Callable[..., Any], *args: Any) -> Any:
    async with asyncio.timeout(60):
        return await asyncio.to_thread(func, *args)


async def outbox_rows(url: str) -> list[dict[str, Any]]:
    engine = create_engine(url)
    try:
        return await outbox.list_rows(engine, limit=10_000)
    finally:
        await engine.dispose()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = TIMEOUT,
                     what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout:.0f} s")
        await asyncio.sleep(0.05)


class InProcess:
    """``gateway.service.run.serve`` on this loop, from a configuration file."""

    def __init__(self, config: Path) -> None:
        self.settings = load_settings(config, env={})
        self.running = Running()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        self.task = asyncio.create_task(serve(
            self.settings, running=self.running, announce=lambda text: None, install_signals=False,
        ))
        deadline = time.monotonic() + TIMEOUT
        while not self.running.addresses:
            if self.task.done():
                self.task.result()
                raise AssertionError("the service stopped before it listened")
            if time.monotonic() > deadline:
                raise AssertionError("the service did not start listening")
            await asyncio.sleep(0.02)
        return self.running.addresses[0][1]

    async def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.running.stop.set()
            async with asyncio.timeout(TIMEOUT):
                await self.task


@pytest.fixture
async def service() -> AsyncIterator[Callable[[Path], Awaitable[tuple[InProcess, int]]]]:
    started: list[InProcess] = []

    async def start(config: Path) -> tuple[InProcess, int]:
        running = InProcess(config)
        started.append(running)
        return running, await running.start()

    yield start
    for running in started:
        await running.stop()


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(*args: Any, **kwargs: Any) -> Receiver:
        receiver = Receiver(*args, **kwargs)
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        receiver.stop()


@pytest.fixture
def gateways(tmp_path: Path) -> Iterator[Callable[..., GatewayProcess]]:
    """``gateway serve -c CONFIG`` processes, killed at the end."""
    started: list[GatewayProcess] = []

    def start(config: Path, *extra: str, env: dict[str, str] | None = None) -> GatewayProcess:
        process = GatewayProcess([*GATEWAY, "serve", "-c", str(config), *extra], tmp_path,
                                 env or base_env())
        started.append(process)
        process.wait_ready()
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> str:
    """A fresh PostgreSQL database at the current schema."""
    return _new_pg_database(request, request.getfixturevalue("postgres_template"))
