"""Fixtures for the database-backed accounts: real SQLite files and a real PostgreSQL.

Every test that takes ``database_url`` runs twice, on SQLite and on PostgreSQL, with a
fresh database migrated to head (a copy of a template, so migrating happens once per
run).  PostgreSQL is the one named by ``GATEWAY_TEST_DATABASE_URL`` (a role that may
create databases) or, without it, the local Debian cluster, started here if it is
down, with a test role created over the postgres superuser's socket.  When neither
can be had the tests fail with the reason: they never skip.
"""

from __future__ import annotations

import asyncio
import ftplib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy.engine import make_url

from gateway import Server
from gateway.users.database import admin, schema
from gateway.users.database.engine import create_engine
from gateway.users.database.hashing import HashSettings, PasswordHashing
from gateway.users.database.manager import DatabaseUserManager

T = TypeVar("T")

HOST = "127.0.0.1"
STEP = 10.0
#: Cheap argon2 for tests; the defaults stay as strong as in production.
TEST_HASH = HashSettings(time_cost=1, memory_cost=8, parallelism=1)
TEST_HASH_ENV = {
    "GATEWAY_ARGON2_TIME_COST": "1",
    "GATEWAY_ARGON2_MEMORY_COST": "8",
    "GATEWAY_ARGON2_PARALLELISM": "1",
}
ROLE = "gateway_test"
ROLE_PASSWORD = "gateway_test_pw"
REPO = Path(__file__).resolve().parents[2]

_hashing = PasswordHashing(TEST_HASH)


def run_async(factory: Callable[[], Awaitable[T]]) -> T:
    """Run async setup from a sync fixture, whatever loop the test itself uses."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- PostgreSQL


def _local_cluster() -> tuple[str, str, int, str]:
    if shutil.which("pg_lsclusters") is None:
        pytest.fail(
            "PostgreSQL is needed: set GATEWAY_TEST_DATABASE_URL to a database a role may "
            "create databases in, or install Debian's postgresql (scripts/install-test-deps.sh)",
            pytrace=False,
        )
    lines = subprocess.run(
        ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    clusters = [line.split() for line in lines if line.strip()]
    if not clusters:
        pytest.fail("no PostgreSQL cluster exists (pg_createcluster 15 main)", pytrace=False)
    version, name, port, status = clusters[0][:4]
    return version, name, int(port), status


def _psql_as_postgres(sql: str) -> str:
    result = subprocess.run(
        ["runuser", "-u", "postgres", "--", "psql", "-v", "ON_ERROR_STOP=1", "-Atc", sql],
        capture_output=True,
        text=True,
        cwd="/",
    )
    if result.returncode != 0:
        pytest.fail(f"psql as postgres failed: {result.stderr.strip()}", pytrace=False)
    return result.stdout


def _start_local_postgres() -> str:
    version, name, port, status = _local_cluster()
    if status != "online":
        result = subprocess.run(
            ["pg_ctlcluster", version, name, "start"], capture_output=True, text=True
        )
        if result.returncode != 0 and "already running" not in result.stderr:
            pytest.fail(
                f"could not start PostgreSQL {version}/{name}: {result.stderr.strip()}",
                pytrace=False,
            )
    deadline = time.monotonic() + 30
    while True:
        probe = subprocess.run(
            ["runuser", "-u", "postgres", "--", "psql", "-p", str(port), "-Atc", "select 1"],
            capture_output=True, text=True, cwd="/",
        )
        if probe.returncode == 0:
            break
        if time.monotonic() > deadline:
            pytest.fail(f"PostgreSQL did not come up: {probe.stderr.strip()}", pytrace=False)
        time.sleep(0.2)  # polling a starting server process; there is no event to wait on
    exists = _psql_as_postgres(f"SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}'").strip()
    verb = "ALTER" if exists else "CREATE"
    _psql_as_postgres(f"{verb} ROLE {ROLE} LOGIN CREATEDB PASSWORD '{ROLE_PASSWORD}'")
    # DROP DATABASE ... WITH (FORCE) must be able to end an autovacuum worker that
    # happens to be visiting the test database
    _psql_as_postgres(f"GRANT pg_signal_backend TO {ROLE}")
    return f"postgresql+asyncpg://{ROLE}:{ROLE_PASSWORD}@{HOST}:{port}/postgres"


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """A URL whose role may create and drop databases."""
    url = os.environ.get("GATEWAY_TEST_DATABASE_URL") or _start_local_postgres()
    url = make_url(url).set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)

    async def probe() -> None:
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                await connection.exec_driver_sql("SELECT 1")
        finally:
            await engine.dispose()

    try:
        run_async(probe)
    except Exception as exc:
        pytest.fail(f"PostgreSQL at {make_url(url)!r} is not usable: {exc}", pytrace=False)
    return url


async def _pg_admin(admin_url: str, *statements: str) -> None:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            for statement in statements:
                await connection.exec_driver_sql(statement)
    finally:
        await engine.dispose()


def _database(admin_url: str, name: str) -> str:
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_template(postgres_admin_url: str) -> Iterator[str]:
    """A database migrated to head, cloned for every test."""
    name = f"gw_template_{uuid.uuid4().hex[:12]}"
    run_async(lambda: _pg_admin(postgres_admin_url, f'CREATE DATABASE "{name}"'))

    async def migrate() -> None:
        engine = create_engine(_database(postgres_admin_url, name))
        try:
            await schema.upgrade(engine)
        finally:
            await engine.dispose()

    run_async(migrate)
    yield name
    _drop_database(postgres_admin_url, name)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"

    async def migrate() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        try:
            await schema.upgrade(engine)
        finally:
            await engine.dispose()

    run_async(migrate)
    return path


def _new_pg_database(request: pytest.FixtureRequest, template: str | None) -> str:
    admin_url = request.getfixturevalue("postgres_admin_url")
    name = f"gw_test_{uuid.uuid4().hex[:12]}"
    clone = f' TEMPLATE "{template}"' if template else ""
    deadline = time.monotonic() + 20
    while True:
        try:
            run_async(lambda: _pg_admin(admin_url, f'CREATE DATABASE "{name}"{clone}'))
            break
        except Exception as exc:
            # autovacuum may be visiting the template for a moment: "being accessed
            # by other users"; anything else, or for too long, is a real failure
            if "being accessed by other users" not in str(exc) or time.monotonic() > deadline:
                raise
    request.addfinalizer(lambda: _drop_database(admin_url, name))
    return _database(admin_url, name)


def _drop_database(admin_url: str, name: str) -> None:
    """Drop a test database; a background worker visiting it briefly is waited out."""
    deadline = time.monotonic() + 20
    while True:
        try:
            run_async(lambda: _pg_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except Exception as exc:
            transient = "being accessed by other users" in str(exc) or "pg_signal_backend" in str(exc)
            if not transient or time.monotonic() > deadline:
                raise
            time.sleep(0.2)  # the worker ends on its own; there is no event to wait on


@pytest.fixture(params=["sqlite", "postgresql"])
def database_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def database_url(database_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database at the current schema, on SQLite or PostgreSQL."""
    if database_kind == "sqlite":
        path = tmp_path / "accounts.sqlite3"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    return _new_pg_database(request, request.getfixturevalue("postgres_template"))


@pytest.fixture
def empty_database_url(database_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with no schema at all (a SQLite file not created yet)."""
    if database_kind == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'empty' / 'accounts.sqlite3'}"
    return _new_pg_database(request, None)


# ----------------------------------------------------------------------------- accounts


async def add_account(
    url: str,
    login: str,
    password: str | None = "secret",
    *,
    root: Path | str,
    rules: list[tuple[str, bool, bool]] | None = None,
    **limits: int | None,
) -> None:
    engine = create_engine(url)
    try:
        await admin.add_user(
            engine,
            login,
            password_hash=None if password is None else _hashing.hash(password),
            storage_root=str(root),
            permissions_=rules,
            limits=limits,
        )
    finally:
        await engine.dispose()


async def change(url: str, action: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
    """Run an ``admin`` action on its own engine, as the command line would."""
    engine = create_engine(url)
    try:
        return await action(engine, *args, **kwargs)
    finally:
        await engine.dispose()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "root"
    path.mkdir()
    return path


@pytest.fixture
async def make_manager() -> AsyncIterator[Callable[..., DatabaseUserManager]]:
    """``make_manager(url, **options)``: test-cost hashing, no limiter unless given."""
    managers: list[DatabaseUserManager] = []

    def make(url: str, **options: Any) -> DatabaseUserManager:
        options.setdefault("hashing", TEST_HASH)
        options.setdefault("login_limiter", None)
        options.setdefault("cache_ttl", 0.2)
        manager = DatabaseUserManager(url, **options)
        managers.append(manager)
        return manager

    yield make
    for manager in managers:
        await manager.close()


@pytest.fixture
async def make_server() -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    servers: list[Server] = []

    async def make(manager: DatabaseUserManager, **options: Any) -> Server:
        await manager.connect()
        server = Server(manager, **options)
        await server.start(HOST, 0)
        servers.append(server)
        return server

    yield make
    for server in servers:
        async with asyncio.timeout(STEP):
            await server.close()


# ------------------------------------------------------------------------------- clients


def ftp_connect(port: int) -> ftplib.FTP:
    ftp = ftplib.FTP(timeout=STEP)
    ftp.connect(HOST, port)
    return ftp


def ftp_login(port: int, user: str, passwd: str = "") -> ftplib.FTP:
    ftp = ftp_connect(port)
    ftp.login(user, passwd)
    return ftp


def login_error(port: int, user: str, passwd: str) -> str:
    """The error reply of a login that must fail (USER reply + PASS reply)."""
    ftp = ftp_connect(port)
    try:
        ftp.login(user, passwd)
    except ftplib.all_errors as exc:
        return str(exc)
    finally:
        ftp.close()
    raise AssertionError(f"login of {user!r} succeeded")


async def in_thread(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    async with asyncio.timeout(60):
        return await asyncio.to_thread(func, *args, **kwargs)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Poll ``check`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def table_names(connection: Any) -> set[str]:
    """The tables of the database behind an async connection."""
    from sqlalchemy import inspect

    return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))


async def schema_differences(database_url: str) -> list[Any]:
    """What Alembic finds different between the migrated database and the models."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from gateway.users.database.models import Base

    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            differences: list[Any] = await connection.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
            )
    finally:
        await engine.dispose()
    return differences
