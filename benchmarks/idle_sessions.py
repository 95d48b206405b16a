"""Idle sessions: how many logged-in, idle control connections one ``gateway serve`` holds.

    python benchmarks/idle_sessions.py [--sessions 10000] [--rounds 2] [--markdown FILE]
    python benchmarks/idle_sessions.py --quick

One fresh ``gateway serve`` process (a static account, or ``--accounts sqlite``; local
disk root) per round.  The client is raw asyncio streams on uvloop in this process
(one socket and two small objects per session), logging in at most ``--concurrency``
sessions at a time, as a fleet of devices reconnecting would.  Measured at each step
of ``--steps`` (then at ``--sessions``): the server's RSS, open file descriptors and
threads; memory per session is (RSS - RSS before) / sessions.  With every session
connected: NOOP latency on ``--sample`` random sessions, one at a time (p50, p99,
max), and a sweep sending NOOP to every session (100 in flight) that counts those
that do not answer 200.

``--probe-max N`` opens sessions on a fresh process (open-files limit raised to
N + 50 for both sides; -1: up to the hard limit) until N or the first failure:
the most one process holds.
``--limit-demo`` shows what a client sees when the server's ``ulimit -n`` is the
common default of 1024.  ``--profile N`` runs the server in a child process under
tracemalloc and reports what N sessions allocate, line by line and by type.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPT = str(Path(__file__).resolve())
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import loadgen  # noqa: E402
import nodes  # noqa: E402
import tables  # noqa: E402

LOGIN = "bench"
PASSWORD = "bench-password"
KIB = 1024


# -- the client ------------------------------------------------------------------------------
async def connect(host: str, port: int, source: str | None, timeout: float) -> loadgen.Control:
    async with asyncio.timeout(timeout):
        try:
            reader, writer = await asyncio.open_connection(
                host, port, local_addr=(source, 0) if source else None)
        except OSError as exc:
            raise loadgen.ClientFailure("connect", f"{type(exc).__name__}: {exc}"[:90]) from exc
        control = loadgen.Control(reader, writer)
        try:
            await control.expect("greeting", "220")
            await control.login(LOGIN, PASSWORD)
        except BaseException:
            control.abort()
            raise
        return control


class Fleet:
    """The idle sessions, opened a bounded number at a time."""

    def __init__(self, host: str, port: int, concurrency: int, sources: list[str] | None = None,
                 per_source: int = 25000, timeout: float = 30.0) -> None:
        self.host, self.port = host, port
        self.concurrency = concurrency
        self.sources = sources or [None]  # type: ignore[list-item]
        self.per_source = per_source
        self.timeout = timeout
        self.controls: list[loadgen.Control] = []
        self.failures: Counter[str] = Counter()

    def _source(self, index: int) -> str | None:
        return self.sources[min(index // self.per_source, len(self.sources) - 1)]

    async def grow(self, total: int, stop_on_failure: bool = False) -> float:
        """Open sessions until ``total`` are connected; the seconds it took."""
        started = time.perf_counter()
        gate = asyncio.Semaphore(self.concurrency)
        failed = asyncio.Event()

        async def one(index: int) -> None:
            async with gate:
                if stop_on_failure and failed.is_set():
                    return
                try:
                    self.controls.append(await connect(self.host, self.port, self._source(index),
                                                       self.timeout))
                except (loadgen.ClientFailure, TimeoutError, OSError) as exc:
                    self.failures[_reason(exc)] += 1
                    failed.set()

        await asyncio.gather(*(one(i) for i in range(len(self.controls), total)))
        return time.perf_counter() - started

    async def close(self) -> None:
        for control in self.controls:
            control.abort()
        self.controls.clear()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    return str(exc)[:90]


async def noop(control: loadgen.Control) -> float:
    started = time.perf_counter()
    await control.command("NOOP", "200")
    return time.perf_counter() - started


async def noop_sequential(controls: list[loadgen.Control], sample: int) -> list[float]:
    chosen = random.sample(controls, min(sample, len(controls)))
    return [await noop(control) for control in chosen]


async def noop_sweep(controls: list[loadgen.Control], in_flight: int = 100) -> tuple[int, list[float]]:
    """NOOP to every session, ``in_flight`` at a time: (failures, latencies)."""
    failures = 0
    latencies: list[float] = []
    for start in range(0, len(controls), in_flight):
        wave = controls[start:start + in_flight]
        results = await asyncio.gather(*(asyncio.wait_for(noop(c), 30) for c in wave),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                failures += 1
            else:
                latencies.append(result)
    return failures, latencies


# -- the server ------------------------------------------------------------------------------
def start_node(workdir: Path, name: str, accounts: str, nofile_limit: int | None,
               argv: list[str] | None = None) -> nodes.GatewayNode:
    root = workdir / "files"
    root.mkdir(exist_ok=True)
    if accounts == "static":
        users = nodes.static_user(LOGIN, nodes.cheap_hash(PASSWORD), str(root))
    else:
        database = workdir / f"{name}.sqlite3"
        _sqlite_account(database, str(root))
        users = f'[users.database]\nurl = "sqlite:///{database}"\n'
    config = nodes.node_config(root=str(root), users=users, log=workdir / f"{name}.log",
                               extra=nodes.USERS_TABLE)
    node = nodes.GatewayNode(workdir, name, config, nofile_limit=nofile_limit, argv=argv and [
        *argv, str(workdir / f"{name}.toml")])
    return node.wait_ready()


def _sqlite_account(database: Path, root: str) -> None:
    from gateway.users.database import admin, schema
    from gateway.users.database.engine import create_engine

    async def fill() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{database}")
        try:
            await schema.upgrade(engine)
            await admin.add_user(engine, LOGIN, password_hash=nodes.cheap_hash(PASSWORD),
                                 storage_root=root)
        finally:
            await engine.dispose()

    asyncio.run(fill())


def settle(pid: int, limit: float = 3.0) -> int:
    """RSS once it stops moving (two samples 0.2 s apart within 64 KiB), or after ``limit`` s."""
    deadline = time.monotonic() + limit
    last = nodes.rss(pid)
    while time.monotonic() < deadline:
        time.sleep(0.2)  # sampling a value until it is stable
        now = nodes.rss(pid)
        if abs(now - last) < 64 * KIB:
            return now
        last = now
    return last


async def warm_up(node: nodes.GatewayNode) -> None:
    control = await connect(node.host, node.port, None, 30)
    await control.command("NOOP", "200")
    await control.quit()


# -- one round -------------------------------------------------------------------------------
async def one_round(args: argparse.Namespace, workdir: Path, index: int) -> dict:
    node = start_node(workdir, f"idle{index}", args.accounts, args.sessions + 100)
    try:
        await warm_up(node)
        base_rss, base_fds = settle(node.pid), nodes.open_fds(node.pid)
        fleet = Fleet(node.host, node.port, args.concurrency)
        steps = []
        for target in sorted({*args.steps, args.sessions}):
            had = len(fleet.controls)
            wall = await fleet.grow(target)
            rss = settle(node.pid)
            count = len(fleet.controls)
            steps.append({
                "sessions": count, "rss": rss, "fds": nodes.open_fds(node.pid),
                "threads": nodes.threads(node.pid), "open_s": wall, "added": count - had,
                "per_session": (rss - base_rss) / count if count else 0,
            })
            print(f"  round {index}: {count} sessions, RSS {rss / 2**20:.1f} MiB, "
                  f"fds {steps[-1]['fds']}, {(rss - base_rss) / max(count, 1) / KIB:.1f} KiB/session",
                  flush=True)
        single = await noop_sequential(fleet.controls, args.sample)
        failures, sweep = await noop_sweep(fleet.controls)
        result = {
            "base_rss": base_rss, "base_fds": base_fds, "steps": steps, "noop": single,
            "sweep_failures": failures, "sweep": sweep, "open_failures": dict(fleet.failures),
            "hwm": nodes.vm_hwm(node.pid), "cpu": nodes.cpu_seconds(node.pid),
            "nofile": node.nofile(), "client_rss": nodes.rss(os.getpid()),
        }
        await fleet.close()
        return result
    finally:
        node.stop()


async def probe_max(args: argparse.Namespace, workdir: Path) -> dict:
    limit = args.probe_max + 50
    node = start_node(workdir, "probe", args.accounts, limit)
    sources = [f"127.0.0.{i}" for i in range(1, 2 + args.probe_max // 25000)]
    try:
        await warm_up(node)
        base_rss = settle(node.pid)
        fleet = Fleet(node.host, node.port, args.concurrency, sources=sources, timeout=20)
        step = 10000
        target = 0
        while target < args.probe_max and not fleet.failures:
            target = min(args.probe_max, target + step)
            await fleet.grow(target, stop_on_failure=True)
            print(f"  probe: {len(fleet.controls)} sessions, RSS {nodes.rss(node.pid) / 2**20:.0f} MiB",
                  flush=True)
        rss = settle(node.pid)
        count = len(fleet.controls)
        failures, sweep = await noop_sweep(fleet.controls)
        result = {"sessions": count, "rss": rss, "per_session": (rss - base_rss) / max(count, 1),
                  "fds": nodes.open_fds(node.pid), "limit": limit, "open_failures": dict(fleet.failures),
                  "sweep_failures": failures, "sweep": sweep}
        await fleet.close()
        return result
    finally:
        node.stop()


async def limit_demo(args: argparse.Namespace, workdir: Path) -> dict:
    """The server at ``ulimit -n 1024``: 1,200 sessions attempted."""
    node = start_node(workdir, "demo", args.accounts, None, argv=[
        sys.executable, SCRIPT, "--serve-with-nofile", "1024"])
    try:
        await warm_up(node)
        fleet = Fleet(node.host, node.port, args.concurrency, timeout=10)
        await fleet.grow(1200)
        connected = len(fleet.controls)
        failures, _ = await noop_sweep(fleet.controls)
        await fleet.close()
        text = node.output() + (workdir / "demo.log").read_text(errors="replace")
        return {"connected": connected, "open_failures": dict(fleet.failures),
                "sweep_failures": failures, "nofile": node.nofile(),
                "emfile_lines": text.count("Too many open files"),
                "alive": node.popen.poll() is None}
    finally:
        node.stop()


# -- tracemalloc profile ---------------------------------------------------------------------
def serve_traced(config: str, snapshots: str) -> None:
    """Child process: ``gateway serve`` under tracemalloc; SIGUSR1 writes a snapshot."""
    import gc
    import tracemalloc

    import uvloop

    from gateway.config import load_settings
    from gateway.observe.logs import configure_logging
    from gateway.service.run import serve

    settings = load_settings(config)
    configure_logging(settings.logging.level, settings.logging.format, settings.logging.file)
    tracemalloc.start(12)
    taken = [0]

    def snapshot(*_: object) -> None:
        gc.collect()
        path = Path(snapshots) / f"snap{taken[0]}"
        tracemalloc.take_snapshot().dump(str(path) + ".tmp")
        types = Counter(type(o).__qualname__ for o in gc.get_objects())
        Path(str(path) + ".types").write_text(json.dumps(types))
        os.rename(str(path) + ".tmp", path)
        taken[0] += 1

    signal.signal(signal.SIGUSR1, snapshot)
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(serve(settings, announce=lambda text: print(text, flush=True)))


def serve_with_nofile(limit: int, config: str) -> None:
    """Child process: ``gateway serve -c config`` with its open-files soft limit at ``limit``."""
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    os.execv(sys.executable, [sys.executable, "-m", "gateway.cli", "serve", "-c", config])


async def profile(args: argparse.Namespace, workdir: Path) -> str:
    import tracemalloc

    snapdir = workdir / "snapshots"
    snapdir.mkdir()
    node = start_node(workdir, "traced", args.accounts, args.profile + 100, argv=[
        sys.executable, SCRIPT, "--serve-traced", str(snapdir)])

    def take(n: int) -> tuple[tracemalloc.Snapshot, Counter[str]]:
        os.kill(node.pid, signal.SIGUSR1)
        path = snapdir / f"snap{n}"
        deadline = time.monotonic() + 120
        while not path.exists():
            if time.monotonic() > deadline:
                raise RuntimeError("no snapshot from the traced server")
            time.sleep(0.1)  # polling for the file the child writes
        return tracemalloc.Snapshot.load(str(path)), Counter(json.loads(Path(str(path) + ".types").read_text()))

    try:
        await warm_up(node)
        rss0 = settle(node.pid)
        before, types0 = take(0)
        fleet = Fleet(node.host, node.port, args.concurrency)
        await fleet.grow(args.profile)
        await noop_sweep(fleet.controls)  # every session has run a command after login
        rss1 = settle(node.pid)
        after, types1 = take(1)
        count = len(fleet.controls)
        await fleet.close()
    finally:
        node.stop()
    filters = [tracemalloc.Filter(False, tracemalloc.__file__)]
    before, after = before.filter_traces(filters), after.filter_traces(filters)
    stats = after.compare_to(before, "lineno")
    traced = sum(s.size_diff for s in stats)
    lines = [f"{count} sessions; RSS grew {(rss1 - rss0) / count:.0f} B per session (with "
             f"tracemalloc's own overhead), Python allocations traced: {traced / count:.0f} B per "
             f"session in {sum(s.count_diff for s in stats) / count:.1f} blocks.\n\n",
             "Top allocation sites (bytes and blocks per session):\n\n"]
    rows = []
    for stat in stats[:args.profile_top]:
        frame = stat.traceback[0]
        where = f"{_short(frame.filename)}:{frame.lineno}"
        rows.append((where, f"{stat.size_diff / count:.0f}", f"{stat.count_diff / count:.2f}"))
    lines.append(tables.table(("allocated at", "B/session", "blocks/session"), rows))
    by_file: Counter[str] = Counter()
    for stat in after.compare_to(before, "filename"):
        by_file[_short(stat.traceback[0].filename)] += stat.size_diff
    lines.append("\nBy file (B per session):\n\n")
    lines.append(tables.table(("file", "B/session"), [(f, f"{s / count:.0f}") for f, s in by_file.most_common(12)]))
    grown = Counter({t: types1[t] - types0.get(t, 0) for t in types1})
    lines.append("\nGC-tracked objects per session, by type:\n\n")
    lines.append(tables.table(("type", "objects/session"),
                              [(t, f"{n / count:.2f}") for t, n in grown.most_common(15) if n > 0]))
    # the same traces by full stack for the biggest sites, to say who asks for them
    lines.append("\nCall paths of the three biggest sites:\n")
    for stat in after.compare_to(before, "traceback")[:3]:
        lines.append(f"\n{stat.size_diff / count:.0f} B/session:\n```\n"
                     + "\n".join(f"{_short(f.filename)}:{f.lineno}" for f in list(stat.traceback)[-8:])
                     + "\n```\n")
    return "".join(lines)


def _short(filename: str) -> str:
    for marker in ("/site-packages/", str(HERE.parent) + "/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    if "/lib/python3" in filename:
        return "stdlib/" + filename.split("/lib/python3", 1)[1].split("/", 1)[1]
    return filename


# -- report ----------------------------------------------------------------------------------
def report(args: argparse.Namespace, rounds: list[dict], probe: dict | None, demo: dict | None,
           profiled: str | None, command: str) -> str:
    out = [f"Command: `{command}`  \nMachine: {tables.machine()} (busy: others run tests on "
           f"the same 2 cores). Accounts: {args.accounts}; argon2 at the tests' cheap setting; "
           f"logins {args.concurrency} at a time; local-disk root.\n\n"]
    rows: list[tuple[object, ...]] = []
    for index, result in enumerate(rounds, 1):
        for step in result["steps"]:
            rows.append((index, step["sessions"], tables.mib(step["rss"]),
                         f"{step['per_session'] / KIB:.1f}", step["fds"],
                         f"{(step['fds'] - result['base_fds']) / step['sessions']:.3f}",
                         step["threads"], f"{step['added'] / step['open_s']:.0f}"
                         if step["open_s"] else "-"))
    out.append("RSS, file descriptors and threads of the server as sessions are added "
               "(per session: growth since the empty process / sessions):\n\n")
    out.append(tables.table(("round", "sessions", "RSS MiB", "KiB/session", "open fds",
                             "fds/session", "threads", "logins/s"), rows))
    rows = []
    for index, result in enumerate(rounds, 1):
        last = result["steps"][-1]
        rows.append((index, last["sessions"], tables.ms(tables.percentile(result["noop"], 0.5)),
                     tables.ms(tables.percentile(result["noop"], 0.99)), tables.ms(max(result["noop"])),
                     f"{last['sessions'] - result['sweep_failures']}/{last['sessions']}",
                     tables.ms(tables.percentile(result["sweep"], 0.99)),
                     tables.mib(result["hwm"]), sum(result["open_failures"].values()),
                     tables.mib(result["client_rss"])))
    out.append(f"\nWith all sessions connected: NOOP on {args.sample} random sessions one at a "
               "time, and a sweep over every session (100 NOOPs in flight):\n\n")
    out.append(tables.table(("round", "sessions", "NOOP p50 ms", "NOOP p99 ms", "NOOP max ms",
                             "answered sweep", "sweep p99 ms", "VmHWM MiB", "failed logins",
                             "client RSS MiB"), rows))
    reasons: Counter[str] = Counter()
    for result in rounds:
        reasons.update(result["open_failures"])
    if reasons:
        out.append("\nFailed logins: " + "; ".join(f"{n}x {r}" for r, n in reasons.most_common(5)) + "\n")
    last = rounds[-1]
    out.append(f"\nServer open-files limit during the rounds: soft {last['nofile'][0]}, hard "
               f"{last['nofile'][1]}; empty server: {last['base_fds']} fds, "
               f"{tables.mib(last['base_rss'])} MiB RSS.\n")
    if probe:
        out.append(f"\n**Most sessions one process held** (open-files limit {probe['limit']} for the "
                   f"server and the client, clients from several 127.0.0.x addresses): "
                   f"{probe['sessions']} sessions, RSS {tables.mib(probe['rss'])} MiB "
                   f"({probe['per_session'] / KIB:.1f} KiB/session), {probe['fds']} fds; "
                   f"{probe['sessions'] - probe['sweep_failures']} answered the NOOP sweep "
                   f"(p99 {tables.ms(tables.percentile(probe['sweep'], 0.99))} ms); "
                   f"stopped by: {', '.join(f'{n}x {r}' for r, n in probe['open_failures'].items()) or 'the target, no failure'}.\n")
    if demo:
        out.append(f"\n**At `ulimit -n 1024`** (server soft limit {demo['nofile'][0]}): of 1200 "
                   f"sessions, {demo['connected']} logged in; the rest failed with "
                   f"{'; '.join(f'{n}x {r}' for r, n in demo['open_failures'].items()) or 'nothing'}; "
                   f"'Too many open files' in the server's output {demo['emfile_lines']} times; "
                   f"server still running: {demo['alive']}; "
                   f"{demo['connected'] - demo['sweep_failures']} of the connected answered NOOP.\n")
    if profiled:
        out.append("\n### Memory per session, by allocation site (tracemalloc)\n\n" + profiled)
    return "".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10000)
    parser.add_argument("--steps", default="1000,2500,5000")
    parser.add_argument("--sample", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--accounts", choices=("static", "sqlite"), default="static")
    parser.add_argument("--probe-max", type=int, default=0,
                        help="sessions to try for; 0: none, -1: up to the hard open-files limit")
    parser.add_argument("--limit-demo", action="store_true")
    parser.add_argument("--profile", type=int, default=0)
    parser.add_argument("--profile-top", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1000 sessions, 1 round")
    parser.add_argument("--markdown")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (configs, logs)")
    parser.add_argument("--serve-traced", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--serve-with-nofile", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_traced:
        serve_traced(args.serve_traced[1], args.serve_traced[0])
        return
    if args.serve_with_nofile:
        serve_with_nofile(int(args.serve_with_nofile[0]), args.serve_with_nofile[1])
        return
    if args.quick:
        args.sessions, args.rounds, args.sample = 1000, 1, 100
        args.steps = "250,500"
        args.profile = min(args.profile, 300)
    if args.probe_max < 0:
        args.probe_max = nodes.nofile()[1] - 100
    args.steps = [int(s) for s in str(args.steps).split(",") if s and int(s) < args.sessions]
    nodes.raise_nofile(max(args.sessions, args.probe_max, args.profile) + 100)
    import uvloop

    workdir = nodes.work_directory("gateway-idle-", args.keep)
    command = "python benchmarks/idle_sessions.py " + " ".join(sys.argv[1:])
    rounds = [uvloop.run(one_round(args, workdir, i)) for i in range(1, args.rounds + 1)]
    probe = uvloop.run(probe_max(args, workdir)) if args.probe_max else None
    demo = uvloop.run(limit_demo(args, workdir)) if args.limit_demo else None
    profiled = uvloop.run(profile(args, workdir)) if args.profile else None
    tables.write_report(args.markdown, "Idle sessions", report(args, rounds, probe, demo, profiled, command))


if __name__ == "__main__":
    main()
