"""Logins per second with accounts on PostgreSQL: one node, and three behind HAProxy.

    python benchmarks/cluster_logins.py [--seconds 10] [--clients 100] [--rounds 2] [--markdown FILE]
    python benchmarks/cluster_logins.py --quick

Accounts ``bench0`` .. ``bench{N-1}`` (``--accounts``) live in a fresh PostgreSQL
database (``--postgres-url``, else one made with the tests' role on the local cluster,
as ``logins_db.py`` does; dropped at the end).  Every node is a ``gateway serve``
process with ``[users.database]`` on it.  ``--clients`` raw asyncio clients log in
for ``--seconds``, each in a loop: connect, greeting, USER, PASS (a random account),
QUIT; logins/s = successful logins / time.  Each client connects from its own
loopback address (127.0.1.x), as devices do; two more runs have every client on
127.0.0.1, as a fleet behind one NAT address.  Setups, interleaved per round:

* one node, clients connect to it directly;
* one node behind HAProxy (TCP, ``send-proxy-v2``; the node has ``proxy_protocol``);
* three nodes behind HAProxy, round robin.

each with the account cache off (every login reads the database)
and at its default (5 s); "off" is 0.001 s, as 0 is refused.  argon2 runs at the tests' cheap setting so the server and
the database are measured; ``--production-hash`` adds one run of one node with
argon2's production defaults (the real ceiling for a node).

``--db-cost`` (on by default) runs one node in this process, counts the SQL statements
and transactions of each login with SQLAlchemy's engine events, and the time spent in
them, against the login's wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import loadgen  # noqa: E402
import nodes  # noqa: E402
import tables  # noqa: E402

PASSWORD = "bench-password"
BALANCER = "127.0.0.1"
BALANCER_SOURCE = "127.0.0.9"
NODE_HOSTS = ("127.0.0.11", "127.0.0.12", "127.0.0.13")
#: the shortest account cache (0 is refused): every login of the loop reads the database
CACHE_OFF = 0.001
ADMIN_URL = "postgresql+asyncpg://gateway_test:gateway_test_pw@127.0.0.1:5432/postgres"


# -- the database ----------------------------------------------------------------------------
async def pg_admin(url: str, statement: str) -> None:
    from gateway.users.database.engine import create_engine

    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.exec_driver_sql(statement)
    finally:
        await engine.dispose()


async def fill(url: str, accounts: int, root: str, production_hash: bool,
               limit: int | None = None) -> None:
    """Migrate and add the accounts (the hash made once: every account shares it)."""
    from gateway.users.database import admin, schema
    from gateway.users.database.engine import create_engine
    from gateway.users.database.hashing import HashSettings, PasswordHashing

    engine = create_engine(url)
    try:
        if await schema.is_empty(engine):
            await schema.upgrade(engine)
        async with engine.begin() as connection:
            for table in ("sessions", "permissions", "users"):
                await connection.exec_driver_sql(f"DELETE FROM {table}")
        settings = HashSettings() if production_hash else HashSettings(1, 8, 1)
        hashed = PasswordHashing(settings).hash(PASSWORD)
        for i in range(accounts):
            await admin.add_user(engine, f"bench{i}", password_hash=hashed, storage_root=root,
                                 limits={"maximum_connections": limit})
    finally:
        await engine.dispose()


# -- the client ------------------------------------------------------------------------------
def source_address(index: int) -> str:
    """A loopback address of its own for client ``index`` (127.0.1.1, 127.0.1.2, ...)."""
    return f"127.0.{1 + index // 250}.{1 + index % 250}"


async def connect(host: str, port: int, source: str | None) -> loadgen.Control:
    try:
        reader, writer = await asyncio.open_connection(
            host, port, local_addr=(source, 0) if source else None)
    except OSError as exc:
        raise loadgen.ClientFailure("connect", f"{type(exc).__name__}: {exc}"[:80]) from exc
    control = loadgen.Control(reader, writer)
    try:
        await control.expect("greeting", "220")
    except BaseException:
        control.abort()
        raise
    return control


async def login_loop(host: str, port: int, clients: int, seconds: float, accounts: int,
                     one_address: bool = False) -> dict:
    """``clients`` loops of connect/USER/PASS/QUIT; each client from its own address
    unless ``one_address`` (all from 127.0.0.1, as a fleet behind one NAT)."""
    latencies: list[float] = []
    failures: Counter[str] = Counter()
    deadline = time.perf_counter() + seconds

    async def worker(index: int) -> None:
        source = None if one_address else source_address(index)
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                async with asyncio.timeout(30):
                    control = await connect(host, port, source)
                    try:
                        await control.login(f"bench{random.randrange(accounts)}", PASSWORD)
                        await control.quit()
                    finally:
                        control.close()
            except (loadgen.ClientFailure, TimeoutError, OSError) as exc:
                failures["timeout" if isinstance(exc, TimeoutError) else str(exc)[:80]] += 1
                continue
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(clients)))
    wall = time.perf_counter() - started
    return {"ok": len(latencies), "rate": len(latencies) / wall, "latencies": latencies,
            "failures": failures, "wall": wall}


# -- setups ----------------------------------------------------------------------------------
def static_accounts(accounts: int) -> str:
    """The same logins as [[users.static]] entries: the no-database baseline."""
    hashed = nodes.cheap_hash(PASSWORD)
    return "".join(nodes.static_user(f"bench{i}", hashed) + "\n" for i in range(accounts))


def start_setup(workdir: Path, name: str, count: int, balanced: bool, url: str, cache_ttl: float,
                env: dict[str, str] | None = None,
                static: str | None = None) -> tuple[list[nodes.GatewayNode], nodes.HAProxy | None, str, int]:
    root = workdir / "files"
    root.mkdir(exist_ok=True)
    started: list[nodes.GatewayNode] = []
    proxy = None
    try:
        for index in range(count):
            config = nodes.node_config(
                root=str(root), host=NODE_HOSTS[index], log=workdir / f"{name}-node{index}.log",
                balancer=BALANCER_SOURCE if balanced else None,
                users=static or f'[users.database]\nurl = "{url}"\ncache_ttl = {cache_ttl}\n',
                extra=nodes.USERS_TABLE)
            started.append(nodes.GatewayNode(workdir, f"{name}-node{index}", config,
                                             nofile_limit=nodes.nofile()[1], env=env).wait_ready())
        if not balanced:
            return started, None, started[0].host, started[0].port
        port = nodes.free_port_range(1, (BALANCER,), low=33000 - 2000, high=33000).start
        proxy = nodes.HAProxy(workdir, nodes.haproxy_config((BALANCER, port), [(n.host, n.port) for n in started],
                                                            BALANCER_SOURCE), port)
        return started, proxy, BALANCER, port
    except BaseException:
        for node in started:
            node.stop()
        raise


async def wait_all_nodes_serve(host: str, port: int, count: int, started: list[nodes.GatewayNode]) -> None:
    """Logins until every node has served one (HAProxy's first health checks may
    still be running), so the measurement starts with all nodes in rotation."""
    deadline = time.monotonic() + 30
    while True:
        control = await loadgen.Control.connect(host, port)
        await control.login("bench0", PASSWORD)
        await control.quit()
        served = sum(1 for n in started if "logged in" in n.output() + _log(n))
        if served >= count:
            return
        if time.monotonic() > deadline:
            raise RuntimeError("HAProxy did not send logins to every node")
        await asyncio.sleep(0.2)  # polling the nodes' logs


def postgres_cpu() -> dict[int, float]:
    """CPU seconds of every local PostgreSQL process (a backend started later counts
    from zero, one that ended is missed: the pools keep theirs open)."""
    import psutil  # type: ignore[import-untyped]

    found = {}
    for process in psutil.process_iter(["name"]):
        if process.info["name"] == "postgres":
            try:
                found[process.pid] = nodes.cpu_seconds(process.pid)
            except OSError:
                pass
    return found


def _log(node: nodes.GatewayNode) -> str:
    path = node.config_path.with_suffix(".log")
    return path.read_text(errors="replace") if path.exists() else ""


def measure_setup(args: argparse.Namespace, workdir: Path, url: str, label: str, count: int,
                  balanced: bool, cache_ttl: float, rnd: int, env: dict[str, str] | None = None,
                  seconds: float | None = None, one_address: bool = False,
                  static: str | None = None) -> dict:
    import uvloop

    name = f"{''.join(c if c.isalnum() else '-' for c in label)}-{rnd}-{cache_ttl:g}"
    started, proxy, host, port = start_setup(workdir, name, count, balanced, url, cache_ttl, env, static)
    pids = [n.pid for n in started] + ([proxy.pid] if proxy else [])
    try:
        uvloop.run(wait_all_nodes_serve(host, port, count, started))
        cpu = {pid: nodes.cpu_seconds(pid) for pid in pids}
        database = postgres_cpu()
        result = uvloop.run(login_loop(host, port, args.clients, seconds or args.seconds, args.accounts,
                                       one_address))
        after = postgres_cpu()
        result["db_cpu"] = sum(v - database.get(pid, 0.0) for pid, v in after.items())
        result["cpu"] = {pid: nodes.cpu_seconds(pid) - cpu[pid] for pid in pids}
        result["node_cpu"] = sum(result["cpu"][n.pid] for n in started)
        result["proxy_cpu"] = result["cpu"][proxy.pid] if proxy else 0.0
        return result
    finally:
        if proxy:
            proxy.stop()
        for node in started:
            node.stop()


# -- database cost per login, in process -----------------------------------------------------
async def db_cost(url: str, workdir: Path, accounts: int, logins: int) -> list[tuple]:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from gateway.config import load_settings
    from gateway.service.run import Running, serve

    counts: Counter[str] = Counter()
    statements: Counter[str] = Counter()
    spent = [0.0]

    def before(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001, ANN202
        conn.info.setdefault("started", []).append(time.perf_counter())

    def after(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001, ANN202
        spent[0] += time.perf_counter() - conn.info["started"].pop()
        counts["statements"] += 1
        statements[" ".join(statement.split())[:70]] += 1

    def on_commit(conn):  # noqa: ANN001, ANN202
        counts["commits"] += 1

    def on_checkout(*_):  # noqa: ANN002, ANN202
        counts["checkouts"] += 1

    event.listen(Engine, "before_cursor_execute", before)
    event.listen(Engine, "after_cursor_execute", after)
    event.listen(Engine, "commit", on_commit)
    from sqlalchemy.pool import Pool

    event.listen(Pool, "checkout", on_checkout)
    rows: list[tuple[str, ...]] = []
    for label, ttl, limit in (("first login of an account (cache miss)", 5.0, None),
                              ("same accounts again within cache_ttl (hit)", 5.0, None),
                              ("cache off (cache_ttl = 0.001 s)", CACHE_OFF, None),
                              ("account with max_connections (cache miss)", 5.0, 1000)):
        if "again" not in label:
            await fill(url, accounts, str(workdir / "files"), False, limit)
            config = workdir / f"dbcost-{len(rows)}.toml"
            config.write_text(nodes.node_config(
                root=str(workdir / "files"), log=workdir / "dbcost.log", extra=nodes.USERS_TABLE,
                users=f'[users.database]\nurl = "{url}"\ncache_ttl = {ttl}\n'))
            running = Running()
            task = asyncio.create_task(serve(load_settings(config), running=running, install_signals=False,
                                             announce=lambda _text: None))
            while not running.addresses:
                if task.done():
                    task.result()
                await asyncio.sleep(0.05)  # polling for the listener
            host, port, _ = running.addresses[0]
            # warm: pools and the first connections, on an account the measurement skips
            control = await loadgen.Control.connect(host, port)
            await control.login(f"bench{accounts - 1}", PASSWORD)
            await control.quit()
        counts.clear()
        statements.clear()
        spent[0] = 0.0
        started = time.perf_counter()
        for i in range(logins):
            control = await loadgen.Control.connect(host, port)
            await control.login(f"bench{i}", PASSWORD)
            await control.quit()
        wall = time.perf_counter() - started
        # what the server does after 221 (session accounting) is counted once it settles
        await asyncio.sleep(0.5)
        rows.append((label, f"{counts['statements'] / logins:.2f}", f"{counts['commits'] / logins:.2f}",
                     f"{counts['checkouts'] / logins:.2f}", f"{spent[0] / logins * 1000:.2f}",
                     f"{wall / logins * 1000:.2f}", f"{spent[0] / wall:.0%}",
                     "; ".join(f"{n / logins:.2f}x `{s}`" for s, n in statements.most_common(4))))
        if "first" not in label:
            running.stop.set()
            await task
    event.remove(Engine, "before_cursor_execute", before)
    event.remove(Engine, "after_cursor_execute", after)
    event.remove(Engine, "commit", on_commit)
    event.remove(Pool, "checkout", on_checkout)
    return rows


# -- main ------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--postgres-url")
    parser.add_argument("--production-hash", action="store_true")
    parser.add_argument("--no-db-cost", action="store_true")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 3 s per setup, 1 round")
    parser.add_argument("--markdown")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (configs, logs)")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds, args.accounts, args.clients = 3.0, 1, 100, 50
    nodes.raise_nofile(nodes.nofile()[1])
    os.environ.update(nodes.CHEAP_HASH)  # the in-process node of --db-cost
    import uvloop

    workdir = nodes.work_directory("gateway-cluster-logins-", args.keep)
    made = None
    url = args.postgres_url
    if url is None:
        made = f"gw_bench_{uuid.uuid4().hex[:10]}"
        asyncio.run(pg_admin(ADMIN_URL, f'CREATE DATABASE "{made}"'))
        url = ADMIN_URL.rsplit("/", 1)[0] + "/" + made
    command = "python benchmarks/cluster_logins.py " + " ".join(sys.argv[1:])
    setups = [("1 node, direct", 1, False), ("1 node behind HAProxy", 1, True),
              ("3 nodes behind HAProxy", 3, True)]
    results: list[tuple[str, float, int, dict]] = []
    cost_rows: list[tuple] = []
    production = None
    try:
        asyncio.run(fill(url, args.accounts, str(workdir / "files"), False))
        for rnd in range(1, args.rounds + 1):
            for ttl in (CACHE_OFF, 5.0):
                for label, count, balanced in setups:
                    result = measure_setup(args, workdir, url, label, count, balanced, ttl, rnd)
                    results.append((label, ttl, rnd, result))
                    print(f"  round {rnd} cache_ttl={ttl:g} {label}: {result['rate']:.0f} logins/s",
                          flush=True)
            result = measure_setup(args, workdir, url, "1 node, direct", 1, False, 5.0, rnd,
                                   static=static_accounts(args.accounts))
            results.append(("1 node, direct, static accounts (no database)", 0.0, rnd, result))
            print(f"  round {rnd} static accounts: {result['rate']:.0f} logins/s", flush=True)
            for label, count, balanced in (setups[0], setups[2]):
                result = measure_setup(args, workdir, url, label, count, balanced, 5.0, rnd,
                                       one_address=True)
                label += ", all clients from one address"
                results.append((label, 5.0, rnd, result))
                print(f"  round {rnd} {label}: {result['rate']:.0f} logins/s", flush=True)
        if args.production_hash:
            asyncio.run(fill(url, args.accounts, str(workdir / "files"), True))
            env = {k: v for k, v in nodes.base_env().items() if not k.startswith("GATEWAY_ARGON2")}
            production = measure_setup(args, workdir, url, "1 node, direct", 1, False, 5.0, 0, env=env,
                                       seconds=max(args.seconds, 10.0))
        if not args.no_db_cost:
            cost_rows = uvloop.run(db_cost(url, workdir, args.accounts, min(200, args.accounts - 1)))
    finally:
        if made is not None:
            asyncio.run(pg_admin(ADMIN_URL, f'DROP DATABASE IF EXISTS "{made}" WITH (FORCE)'))
    body = (f"Command: `{command}`  \nMachine: {tables.machine()} (busy: others run tests on the same "
            "2 cores; clients, HAProxy, the nodes and PostgreSQL share them).\n\n"
            f"{args.clients} clients in a loop for {args.seconds:g} s each, each from its own address "
            f"(127.0.1.x), unless marked: connect, USER, PASS (one of "
            f"{args.accounts} accounts at random), QUIT. argon2 at the tests' cheap setting. CPU = CPU "
            "seconds per 1,000 logins (nodes together; HAProxy and PostgreSQL apart).\n\n")
    rows = []
    for label, ttl, rnd, result in results:
        thousand = result["ok"] / 1000 or 1
        rows.append((label, "off" if ttl == CACHE_OFF else (f"{ttl:g} s" if ttl else "-"), rnd, f"{result['rate']:.0f}",
                     tables.ms(tables.percentile(result["latencies"], 0.5)),
                     tables.ms(tables.percentile(result["latencies"], 0.99)),
                     f"{result['node_cpu'] / thousand:.2f}",
                     f"{result['proxy_cpu'] / thousand:.2f}" if result["proxy_cpu"] else "-",
                     f"{result['db_cpu'] / thousand:.2f}", sum(result["failures"].values())))
    body += tables.table(("setup", "account cache", "round", "logins/s", "p50 ms", "p99 ms",
                          "node CPU s/1000", "HAProxy CPU s/1000", "PostgreSQL CPU s/1000", "failed"), rows)
    failures: Counter[str] = Counter()
    for *_, result in results:
        failures.update(result["failures"])
    if failures:
        body += "\nFailures: " + "; ".join(f"{n}x {r}" for r, n in failures.most_common(5)) + "\n"
    if production:
        body += (f"\nWith argon2 at its production defaults (t=3, m=64 MiB, p=4; one hashing thread, "
                 f"the default on 2 cores): 1 node, direct: {production['rate']:.1f} logins/s, p50 "
                 f"{tables.ms(tables.percentile(production['latencies'], 0.5))} ms, p99 "
                 f"{tables.ms(tables.percentile(production['latencies'], 0.99))} ms, "
                 f"{sum(production['failures'].values())} failed"
                 + "".join(f"; {n}x {r}" for r, n in production["failures"].most_common(2)) + ".\n")
    if cost_rows:
        body += ("\nDatabase cost per login (one node in process, logins one at a time; statements "
                 "and commits counted with SQLAlchemy engine events, DB ms = time inside statement "
                 "execution, share = DB time / login wall time from connect to 221):\n\n")
        body += tables.table(("case", "statements", "commits", "pool checkouts", "DB ms", "login ms",
                              "DB share", "statements seen (per login)"), cost_rows)
    tables.write_report(args.markdown, "Logins with accounts on PostgreSQL", body)


if __name__ == "__main__":
    main()
