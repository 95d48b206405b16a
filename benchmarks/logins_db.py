"""Logins per second: MemoryUserManager vs DatabaseUserManager (SQLite, PostgreSQL).

One run, same machine, same client: each server runs in its own process on 127.0.0.1
with the same accounts (``bench0`` .. ``benchN-1``), and a load generator logs in with
``--clients`` concurrent sessions (connect, USER, PASS, QUIT) for ``--rounds`` rounds
after one warm-up round (so the database manager's cache is warm).  The database
servers hash with a cheap argon2 setting so the manager's own cost is what is
measured; the cost of argon2 with the production defaults is measured separately.

    .venv/bin/python benchmarks/logins_db.py
    .venv/bin/python benchmarks/logins_db.py --clients 200 --rounds 5 --postgres-url postgresql://u:p@127.0.0.1/db

PostgreSQL: ``--postgres-url`` (a database the benchmark may fill and empty), else a
new database made with the tests' role (run the tests/users_db suite once first).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CHEAP = {"GATEWAY_ARGON2_TIME_COST": "1", "GATEWAY_ARGON2_MEMORY_COST": "8", "GATEWAY_ARGON2_PARALLELISM": "1"}
PASSWORD = "bench-password"


# ------------------------------------------------------------------------- server side


async def _serve(kind: str, url: str, users: int, limit: int | None) -> None:
    import signal

    from gateway import Server, User
    from gateway.users.database.manager import DatabaseUserManager

    if kind == "memory":
        manager = None
        server = Server([User(f"bench{i}", PASSWORD, base_path=tempfile.gettempdir(),
                              maximum_connections=limit) for i in range(users)])
    else:
        manager = DatabaseUserManager(url, cache_ttl=60.0)
        await manager.connect()
        server = Server(manager)
    await server.start("127.0.0.1", 0)
    print(f"PORT {server.server_port}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.close()
    if manager is not None:
        await manager.close()


def _run_loop(main: object) -> None:
    try:
        import uvloop

        uvloop.run(main)  # type: ignore[arg-type]
    except ImportError:
        asyncio.run(main)  # type: ignore[arg-type]


# ------------------------------------------------------------------------- databases


async def _fill(url: str, users: int, limit: int | None) -> None:
    from gateway.users.database import admin, schema
    from gateway.users.database.engine import create_engine
    from gateway.users.database.hashing import HashSettings, PasswordHashing

    engine = create_engine(url)
    try:
        if await schema.is_empty(engine):
            await schema.upgrade(engine)
        async with engine.begin() as connection:
            await connection.exec_driver_sql("DELETE FROM sessions")
            await connection.exec_driver_sql("DELETE FROM permissions")
            await connection.exec_driver_sql("DELETE FROM users")
        hashed = PasswordHashing(HashSettings(1, 8, 1)).hash(PASSWORD)
        for i in range(users):
            await admin.add_user(
                engine, f"bench{i}", password_hash=hashed, storage_root=tempfile.gettempdir(),
                limits={"maximum_connections": limit},
            )
    finally:
        await engine.dispose()


async def _pg_admin(url: str, statement: str) -> None:
    from gateway.users.database.engine import create_engine

    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.exec_driver_sql(statement)
    finally:
        await engine.dispose()


# ------------------------------------------------------------------------- client side


async def _login(port: int, user: str) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        async def expect(code: bytes) -> None:
            line = await reader.readline()
            while line[3:4] == b"-":  # multi-line reply
                line = await reader.readline()
            if not line.startswith(code):
                raise RuntimeError(f"expected {code!r}, got {line!r}")

        await expect(b"220")
        writer.write(f"USER {user}\r\n".encode())
        await expect(b"331")
        writer.write(f"PASS {PASSWORD}\r\n".encode())
        await expect(b"230")
        writer.write(b"QUIT\r\n")
        await expect(b"221")
    finally:
        writer.close()


async def _round(port: int, clients: int) -> float:
    started = time.perf_counter()
    await asyncio.gather(*(_login(port, f"bench{i}") for i in range(clients)))
    return clients / (time.perf_counter() - started)


async def _measure(port: int, clients: int, rounds: int) -> list[float]:
    await _round(port, clients)  # warm-up: caches, pools, first connections
    return [await _round(port, clients) for _ in range(rounds)]


def _start(kind: str, url: str, users: int, limit: int | None) -> tuple[subprocess.Popen[str], int]:
    args = [sys.executable, __file__, "--serve", kind, "--url", url, "--users", str(users)]
    if limit is not None:
        args += ["--limit", str(limit)]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, cwd=REPO,
                               env={**os.environ, **CHEAP, "PYTHONPATH": str(REPO)})
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("PORT "):
        process.kill()
        raise RuntimeError(f"{kind} server did not start")
    return process, int(line.split()[1])


def _hash_cost() -> tuple[float, float]:
    """(ms per verification, verifications/s on all cores) with the production defaults."""
    from gateway.users.database.hashing import HashSettings, PasswordHashing

    hashing = PasswordHashing(HashSettings())
    stored = hashing.hash(PASSWORD)
    started = time.perf_counter()
    for _ in range(10):
        hashing.verify(stored, PASSWORD)
    single = (time.perf_counter() - started) / 10
    workers = os.cpu_count() or 1
    with ThreadPoolExecutor(workers) as pool:
        started = time.perf_counter()
        list(pool.map(lambda _: hashing.verify(stored, PASSWORD), range(workers * 5)))
        parallel = workers * 5 / (time.perf_counter() - started)
    return single * 1000, parallel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--postgres-url", default=os.environ.get("GATEWAY_BENCH_POSTGRES_URL"))
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--users", type=int, default=200, help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _run_loop(_serve(args.serve, args.url, args.users, args.limit))
        return

    workdir = Path(tempfile.mkdtemp(prefix="gateway-logins-"))
    sqlite_url = f"sqlite+aiosqlite:///{workdir / 'bench.sqlite3'}"
    made_pg = None
    pg_url = args.postgres_url
    if pg_url is None:
        admin_url = "postgresql+asyncpg://gateway_test:gateway_test_pw@127.0.0.1:5432/postgres"
        made_pg = f"gw_bench_{uuid.uuid4().hex[:10]}"
        asyncio.run(_pg_admin(admin_url, f'CREATE DATABASE "{made_pg}"'))
        pg_url = admin_url.rsplit("/", 1)[0] + "/" + made_pg

    setups = [
        ("MemoryUserManager", "memory", "-", None),
        ("Database, SQLite", "db", sqlite_url, None),
        ("Database, PostgreSQL", "db", pg_url, None),
        ("Database, SQLite, max-connections (DB-counted)", "db", sqlite_url, 1000),
        ("Database, PostgreSQL, max-connections (DB-counted)", "db", pg_url, 1000),
    ]
    results: list[tuple[str, float, float]] = []
    try:
        for label, kind, url, limit in setups:
            if kind == "db":
                asyncio.run(_fill(url, args.clients, limit))
            process, port = _start(kind, url, args.clients, limit)
            try:
                rates = asyncio.run(_measure(port, args.clients, args.rounds))
            finally:
                process.terminate()
                process.wait(30)
            results.append((label, statistics.median(rates), max(rates)))
    finally:
        if made_pg is not None:
            asyncio.run(_pg_admin(admin_url, f'DROP DATABASE IF EXISTS "{made_pg}" WITH (FORCE)'))

    base = results[0][1]
    print(f"\n{args.clients} concurrent logins (connect, USER, PASS, QUIT), "
          f"{args.rounds} rounds after a warm-up; argon2 t=1,m=8KiB,p=1 in the database servers\n")
    print(f"| {'manager':52} | logins/s (median) | best | vs memory |")
    print(f"|{'-' * 54}|-------------------|------|-----------|")
    for label, median, best in results:
        print(f"| {label:52} | {median:17.0f} | {best:4.0f} | {median / base:8.0%} |")
    ms, per_second = _hash_cost()
    print(f"\nargon2id with the production defaults (t=3, m=64 MiB, p=4): {ms:.1f} ms per "
          f"verification, {per_second:.0f} verifications/s on {os.cpu_count()} cores; "
          f"a real login rate is capped there.")


if __name__ == "__main__":
    main()
