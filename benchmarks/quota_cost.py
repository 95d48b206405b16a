"""What quotas cost: logins/s and 200 x 1 MiB STOR, quotas off vs on, on PostgreSQL.

One server process (uvloop when installed) with database accounts on PostgreSQL and
their files on local disk:

* ``off``: an account with no quota (nothing is counted; an upload only looks up the
  cached limits);
* ``bytes``: ``max-bytes`` and ``max-files``, far from them (what "quotas on" costs
  an account that is not near its limit);
* ``bytes+transfer``: ``upload-per-day`` as well (one more counter to write per
  upload).

Logins: ``--clients`` concurrent sessions (connect, USER, PASS, QUIT) per round.
Uploads: one session per account storing ``--files`` files of 1 MiB each (EPSV +
STOR, overwriting the same names from the second round on).  The sides run
interleaved, ``--rounds`` times each, and the medians are compared, because the
machine is shared and noisy.

    .venv/bin/python benchmarks/quota_cost.py
    .venv/bin/python benchmarks/quota_cost.py --rounds 7 --postgres-url postgresql://u:p@127.0.0.1/db

The table goes to benchmarks/results/2026-12-02-quotas.md (``--output``).
"""

from __future__ import annotations

import argparse
import asyncio
import ftplib
import io
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from logins_db import PASSWORD, _login, _pg_admin  # noqa: E402  (one login, one admin statement)

CHEAP = {"GATEWAY_ARGON2_TIME_COST": "1", "GATEWAY_ARGON2_MEMORY_COST": "8", "GATEWAY_ARGON2_PARALLELISM": "1"}
MIB = 1 << 20
SIDES = ("off", "bytes", "bytes+transfer")
LOGIN_SIDES = ("off", "bytes")


# ------------------------------------------------------------------------- server side


async def _serve(url: str, fsync: bool) -> None:
    import signal

    from backends.local import DurablePathIO, PathIO
    from gateway import Server
    from gateway.users.database.manager import DatabaseUserManager

    manager = DatabaseUserManager(url, cache_ttl=60.0, login_limiter=None)  # one client address
    await manager.connect()
    # local disk as `gateway serve` has it ([storage] fsync = true), or without the fsync
    server = Server(manager, path_io_factory=DurablePathIO if fsync else PathIO)
    await server.start("127.0.0.1", 0)
    print(f"PORT {server.server_port}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.close()
    await manager.close()


def _run_loop(main: object) -> None:
    try:
        import uvloop

        uvloop.run(main)  # type: ignore[arg-type]
    except ImportError:
        asyncio.run(main)  # type: ignore[arg-type]


# ------------------------------------------------------------------------- the accounts


def _login_of(side: str, index: int = 0) -> str:
    return f"{side.replace('+', '-')}{index}"


async def _fill(url: str, root: Path, clients: int) -> None:
    from gateway.users.database import admin, quotaadmin, schema
    from gateway.users.database.engine import create_engine
    from gateway.users.database.hashing import HashSettings, PasswordHashing

    engine = create_engine(url)
    try:
        if await schema.is_empty(engine):
            await schema.upgrade(engine)
        hashed = PasswordHashing(HashSettings(1, 8, 1)).hash(PASSWORD)
        for side in SIDES:
            for index in range(clients if side in LOGIN_SIDES else 1):
                login = _login_of(side, index)
                await admin.add_user(engine, login, password_hash=hashed,
                                     storage_root=str(root / login))
                if side == "bytes":
                    await quotaadmin.set_quota(engine, login, {"max_bytes": 1 << 40, "max_files": 1 << 20})
                elif side == "bytes+transfer":
                    await quotaadmin.set_quota(engine, login, {"max_bytes": 1 << 40, "max_files": 1 << 20,
                                                               "upload_per_day": 1 << 40})
    finally:
        await engine.dispose()


# ------------------------------------------------------------------------- client side


async def _logins(port: int, side: str, clients: int) -> float:
    started = time.perf_counter()
    await asyncio.gather(*(_login(port, _login_of(side, i)) for i in range(clients)))
    return clients / (time.perf_counter() - started)


def _uploads(port: int, side: str, files: int) -> float:
    """Seconds for ``files`` STOR of 1 MiB in one session."""
    payload = os.urandom(MIB)
    ftp = ftplib.FTP(timeout=60)
    ftp.connect("127.0.0.1", port)
    ftp.login(_login_of(side), PASSWORD)
    try:
        started = time.perf_counter()
        for index in range(files):
            ftp.storbinary(f"STOR f{index}.bin", io.BytesIO(payload), blocksize=256 * 1024)
        return time.perf_counter() - started
    finally:
        ftp.quit()


def _start(url: str, fsync: bool) -> tuple[subprocess.Popen[str], int]:
    flags = ["--fsync"] if fsync else []
    process = subprocess.Popen([sys.executable, __file__, "--serve", "--url", url, *flags],
                               stdout=subprocess.PIPE, text=True, cwd=REPO,
                               env={**os.environ, **CHEAP, "PYTHONPATH": str(REPO)})
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("PORT "):
        process.kill()
        raise RuntimeError("the server did not start")
    return process, int(line.split()[1])


# ------------------------------------------------------------------------- the run


MODES = ("fsync", "no fsync")


def _measure(ports: dict[str, int], args: argparse.Namespace
             ) -> tuple[dict[str, list[float]], dict[tuple[str, str], list[float]]]:
    logins: dict[str, list[float]] = {side: [] for side in LOGIN_SIDES}
    uploads: dict[tuple[str, str], list[float]] = {(m, side): [] for m in MODES for side in SIDES}
    for side in LOGIN_SIDES:  # warm-up: caches, pools, the first files
        asyncio.run(_logins(ports["fsync"], side, args.clients))
    for mode, side in uploads:
        _uploads(ports[mode], side, min(args.files, 20))
    for round_ in range(args.rounds):
        # each round in another order, so no side always runs right after another
        order = SIDES[round_ % 3:] + SIDES[:round_ % 3]
        for side in order:
            if side in LOGIN_SIDES:
                logins[side].append(asyncio.run(_logins(ports["fsync"], side, args.clients)))
            for mode in MODES if round_ % 2 else MODES[::-1]:
                uploads[mode, side].append(_uploads(ports[mode], side, args.files))
        print(f"round {round_ + 1}/{args.rounds}: " + ", ".join(
            f"{mode} {side} {uploads[mode, side][-1]:.2f} s" for mode, side in uploads), flush=True)
    return logins, uploads


LABELS = {"off": "off (no quota)", "bytes": "max-bytes, max-files",
          "bytes+transfer": "max-bytes, max-files, upload-per-day"}


def _table(args: argparse.Namespace, logins: dict[str, list[float]],
           uploads: dict[tuple[str, str], list[float]]) -> str:
    lines = [
        "# Quotas: what they cost (2026-12-02)",
        "",
        f"`benchmarks/quota_cost.py --rounds {args.rounds} --files {args.files} --clients {args.clients}`"
        f" on {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()};"
        " server and clients on one shared machine (other work ran meanwhile), PostgreSQL on"
        " loopback, files on local disk, with each upload fsynced as `gateway serve` does by"
        " default (`[storage] fsync = true`) and without.  The sides ran interleaved; medians"
        f" of {args.rounds} rounds, ratio against quotas off (for seconds, lower is better).",
    ]
    for mode in MODES:
        lines += [
            "",
            f"## {args.files} x 1 MiB STOR, one session, {mode}",
            "",
            "| quotas | seconds (median) | min | max | ms per STOR | vs off |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        base = statistics.median(uploads[mode, "off"])
        for side in SIDES:
            times = uploads[mode, side]
            median = statistics.median(times)
            lines.append(f"| {LABELS[side]} | {median:.2f} | {min(times):.2f} | {max(times):.2f} | "
                         f"{median / args.files * 1000:.1f} | {median / base:.1%} |")
    lines += [
        "",
        "Every round, in seconds (the machine's load changes from one round to the next;",
        "compare sides within a round):",
        "",
        "| round | " + " | ".join(f"{mode}: {side}" for mode in MODES for side in SIDES) + " |",
        "| ---: | " + " | ".join("---:" for _ in MODES for _ in SIDES) + " |",
    ]
    for index in range(args.rounds):
        lines.append(f"| {index + 1} | " + " | ".join(
            f"{uploads[mode, side][index]:.2f}" for mode in MODES for side in SIDES) + " |")
    lines += [
        "",
        f"## Logins, {args.clients} concurrent sessions (connect, USER, PASS, QUIT)",
        "",
        "| quotas | logins/s (median) | min | max | vs off |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    base = statistics.median(logins["off"])
    for side in LOGIN_SIDES:
        median = statistics.median(logins[side])
        lines.append(f"| {LABELS[side]} | {median:.0f} | {min(logins[side]):.0f} | "
                     f"{max(logins[side]):.0f} | {median / base:.1%} |")
    lines += [
        "",
        "A login costs the same with or without a quota: limits are read at the first upload",
        "(and cached like accounts), not at login.  Far from its limits, an upload takes its",
        "claim from what the node keeps claimed and its counts are written right behind the",
        "reply, so no round trip to PostgreSQL is on its way (near a limit every claim is",
        "one); what remains is the bookkeeping, and the statements that write the counts",
        "in the background (what an account changed within 20 ms goes in one).  An upload",
        "quota adds the transfer counters (a second statement) and the counting of every",
        "byte received before it is written.  The counters are written with",
        "`synchronous_commit = off`: no statement waits for a disk sync.  Logins run the",
        "same code for both accounts (no quota is read at login): their difference is the",
        "machine's noise.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)  # within the default hash queue (64)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--postgres-url", default=os.environ.get("GATEWAY_BENCH_POSTGRES_URL"))
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "2026-12-02-quotas.md")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--fsync", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _run_loop(_serve(args.url, args.fsync))
        return

    workdir = Path(tempfile.mkdtemp(prefix="gateway-quotas-"))
    made_pg = None
    pg_url = args.postgres_url
    admin_url = "postgresql+asyncpg://gateway_test:gateway_test_pw@127.0.0.1:5432/postgres"
    if pg_url is None:
        made_pg = f"gw_bench_{uuid.uuid4().hex[:10]}"
        asyncio.run(_pg_admin(admin_url, f'CREATE DATABASE "{made_pg}"'))
        pg_url = admin_url.rsplit("/", 1)[0] + "/" + made_pg
    try:
        asyncio.run(_fill(pg_url, workdir, args.clients))
        durable, durable_port = _start(pg_url, fsync=True)
        plain, plain_port = _start(pg_url, fsync=False)
        try:
            logins, uploads = _measure({"fsync": durable_port, "no fsync": plain_port}, args)
        finally:
            for process in (durable, plain):
                process.terminate()
                process.wait(30)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if made_pg is not None:
            asyncio.run(_pg_admin(admin_url, f'DROP DATABASE IF EXISTS "{made_pg}" WITH (FORCE)'))
    table = _table(args, logins, uploads)
    args.output.write_text(table)
    print(table)


if __name__ == "__main__":
    main()
