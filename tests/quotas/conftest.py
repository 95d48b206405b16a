"""Fixtures for the quota tests: database accounts (SQLite, PostgreSQL) whose files live
on local disk, in memory or in S3 (SeaweedFS), and a way to look at (and change)
their storage behind the gateway's back."""

from __future__ import annotations

import asyncio
import ftplib
import io
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from backends import backend_for_root
from gateway import Server
from gateway.users.database import quotaadmin
from gateway.users.database.manager import DatabaseUserManager
from tests.s3.conftest import all_keys, raw_client, s3_prefix  # noqa: F401  (fixture)
from tests.users_db.conftest import (  # noqa: F401  (fixtures)
    HOST,
    STEP,
    TEST_HASH,
    _new_pg_database,
    add_account,
    change,
    database_kind,
    database_url,
    empty_database_url,
    in_thread,
    postgres_admin_url,
    postgres_template,
    run_async,
    sqlite_template,
)

PASSWORD = "secret"
KIB = 1024
MIB = 1024 * 1024


@dataclass
class Storage:
    """An account's storage root, seen directly: a directory, the memory tree or a
    bucket prefix (not through the gateway)."""

    kind: str
    root: str
    options: dict[str, Any] | None = None
    endpoint: Any = None
    path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    async def put(self, name: str, data: bytes) -> None:
        if self.kind == "local":
            assert self.path is not None
            (self.path / name).write_bytes(data)
        elif self.kind == "s3":
            async with raw_client(self.endpoint) as client:
                await client.put_object(Bucket=self.endpoint.bucket, Key=f"{self.extra['prefix']}/{name}",
                                        Body=data)
        else:
            path_io, real = self._memory()
            async with path_io.open(real / name, "wb") as file:
                await file.write(data)

    async def remove(self, name: str) -> None:
        if self.kind == "local":
            assert self.path is not None
            (self.path / name).unlink()
        elif self.kind == "s3":
            async with raw_client(self.endpoint) as client:
                await client.delete_object(Bucket=self.endpoint.bucket, Key=f"{self.extra['prefix']}/{name}")
        else:
            path_io, real = self._memory()
            await path_io.unlink(real / name)

    async def sizes(self) -> dict[str, int]:
        """Every file below the root: name -> size (what storage really holds)."""
        if self.kind == "local":
            assert self.path is not None
            return {str(p.relative_to(self.path)): p.stat().st_size
                    for p in self.path.rglob("*") if p.is_file()}
        if self.kind == "s3":
            prefix = self.extra["prefix"] + "/"
            async with raw_client(self.endpoint) as client:
                keys = await all_keys(client, self.endpoint.bucket, prefix)
                found = {}
                for key in keys:
                    head = await client.head_object(Bucket=self.endpoint.bucket, Key=key)
                    found[key[len(prefix):]] = int(head["ContentLength"])
                return found
        path_io, real = self._memory()
        found = {}
        pending = [real]
        while pending:
            directory = pending.pop()
            for child in await path_io.list(directory):
                stats = await path_io.stat(child)
                if stats.st_mode & 0o040000:
                    pending.append(child)
                else:
                    found[str(PurePosixPath(child).relative_to(real))] = stats.st_size
        return found

    def _memory(self) -> tuple[Any, Any]:
        factory, real = backend_for_root(self.root)
        return factory(), real


@pytest.fixture(params=["local", "memory", "s3"])
def storage_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def storage(storage_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if storage_kind == "local":
        path = tmp_path / "files"
        path.mkdir()
        return Storage("local", str(path), path=path)
    if storage_kind == "memory":
        made = Storage("memory", f"memory:///quota-{uuid.uuid4().hex[:10]}")
        path_io, real = made._memory()
        run_async(lambda: path_io.mkdir(real, parents=True))
        return made
    endpoint = request.getfixturevalue("s3_service")
    prefix = request.getfixturevalue("s3_prefix")
    return Storage("s3", f"s3://{endpoint.bucket}/{prefix}", options=endpoint.options(),
                   endpoint=endpoint, extra={"prefix": prefix})


@pytest.fixture
async def quota_servers(request: pytest.FixtureRequest, storage: Storage
                        ) -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    """``await quota_servers()``: a started server on the test database and storage
    (call again for another node on the same database)."""
    url: str = request.getfixturevalue("database_url")
    servers: list[Server] = []
    managers: list[DatabaseUserManager] = []

    async def make(**options: Any) -> Server:
        manager = DatabaseUserManager(url, hashing=TEST_HASH, login_limiter=None,
                                      cache_ttl=0.0)
        managers.append(manager)
        await manager.connect()
        server = Server(manager, storage_options=storage.options, **options)
        await server.start(HOST, 0)
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.close()
    for manager in managers:
        await manager.close()


async def account_with_quota(url: str, storage: Storage, login: str = "q",
                             **limits: int | None) -> None:
    await add_account(url, login, PASSWORD, root=storage.root)
    await change(url, quotaadmin.set_quota, login, limits)


async def read_usage(url: str, login: str = "q") -> tuple[int, int, int]:
    """(bytes, files, reserved) in the database now."""
    info = await change(url, quotaadmin.get_quota, login)
    assert info.usage is not None
    return info.usage.bytes, info.usage.files, info.usage.reserved


async def usage_of(url: str, expected: tuple[int, int, int] | None = None, login: str = "q",
                   folder: bool = False) -> tuple[int, int, int]:
    """(bytes, files, reserved) in the database, once it is ``expected`` (a node writes
    its counts a round trip after its reply) or, without one, once no claim is left;
    what it is after 10 s otherwise."""
    deadline = time.monotonic() + 10.0
    while True:
        get = quotaadmin.get_folder_quota if folder else quotaadmin.get_quota
        info = await change(url, get, login)
        assert info.usage is not None
        found = (info.usage.bytes, info.usage.files, info.usage.reserved)
        done = found == expected if expected is not None else found[2] == 0
        if done or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.02)


# ----------------------------------------------------------------------------- clients


def login(port: int, user: str = "q") -> ftplib.FTP:
    ftp = ftplib.FTP(timeout=STEP * 3)
    ftp.connect(HOST, port)
    ftp.login(user, PASSWORD)
    return ftp


def store(ftp: ftplib.FTP, name: str, data: bytes, allo: int | None = None) -> str:
    """The final reply of STOR (226), or the error reply's text (4xx/5xx)."""
    try:
        if allo is not None:
            ftp.sendcmd(f"ALLO {allo}")
        return ftp.storbinary(f"STOR {name}", io.BytesIO(data))
    except (ftplib.error_perm, ftplib.error_temp) as exc:
        return str(exc)
    except OSError:
        # the server cut the upload while the client was still sending: its reply waits
        try:
            return ftp.getresp()
        except (ftplib.error_perm, ftplib.error_temp) as exc:
            return str(exc)


def fetch(ftp: ftplib.FTP, name: str) -> tuple[str, bytes]:
    received = bytearray()
    try:
        reply = ftp.retrbinary(f"RETR {name}", received.extend)
    except (ftplib.error_perm, ftplib.error_temp) as exc:
        return str(exc), bytes(received)
    return reply, bytes(received)


def expect_reply(func: Callable[..., Any], *args: Any) -> str:
    try:
        return str(func(*args))
    except (ftplib.error_perm, ftplib.error_temp, ftplib.error_reply) as exc:
        return str(exc)


__all__ = ("KIB", "MIB", "Storage", "account_with_quota", "expect_reply", "fetch", "in_thread",
           "login", "read_usage", "store", "usage_of")
