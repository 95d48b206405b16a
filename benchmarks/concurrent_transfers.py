"""Concurrent transfers: 1,000 simultaneous 1 MiB uploads, then downloads, through one process.

    python benchmarks/concurrent_transfers.py [--clients 1000] [--rounds 2] [--markdown FILE]
    python benchmarks/concurrent_transfers.py --quick

Servers, each a fresh process per round: ``gateway serve`` on local disk (its
defaults: fsync before 226 and SHA-256 computed as uploads stream), ``gateway serve``
on local disk with ``fsync = false`` and ``upload_checksums = false`` (what pyftpdlib
does), pyftpdlib (``servers.py``, as in ``run.py``), aioftp with ``--aioftp``, and
``gateway serve`` on S3 (SeaweedFS on loopback, as ``s3.py`` starts it, unless
``GATEWAY_BENCH_S3_URL`` names an endpoint).  ``--only`` picks some.

Per server: ``--clients`` clients log in, ``TYPE I``, ``PASV`` and open their data
connection (100 at a time, untimed); then all ``STOR`` a distinct 1 MiB file
(``--file-mib``) at once;
then, with fresh connections, all ``RETR`` those files at once.  The client is the raw
asyncio one of ``timed_transfers.py`` on uvloop.  Reported per phase: throughput
(correct bytes / time from the first command to the last 226), time to first byte
p50/p99 (RETR: the first data byte; STOR: the 150), p99 of the whole transfer, the
server's peak RSS and open descriptors (sampled every 50 ms), VmHWM, its CPU seconds, and failures,
which must be zero; stored files are checked by size (on disk, or listed in S3).
gateway's passive range is ``--clients`` + 500 ports.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import nodes  # noqa: E402
import tables  # noqa: E402
import timed_transfers  # noqa: E402

MIB = 1 << 20
#: bytes per transfer (``--file-mib``)
SIZE = [MIB]
SERVERS = ("gateway", "gateway-nosync", "pyftpdlib", "aioftp", "gateway-s3")
LABELS = {
    "gateway": "gateway serve, local disk (defaults: fsync, sha256)",
    "gateway-nosync": "gateway serve, local disk, fsync off, checksums off",
    "pyftpdlib": "pyftpdlib, local disk",
    "aioftp": "aioftp 0.28, local disk",
    "gateway-s3": "gateway serve, S3 (SeaweedFS)",
}


class Target:
    """A server under test: where it listens, its pid, how to check stored files."""

    def __init__(self, kind: str, host: str, port: int, pid: int, user: str, password: str,
                 stop, check_stored) -> None:  # noqa: ANN001
        self.kind, self.host, self.port, self.pid = kind, host, port, pid
        self.user, self.password = user, password
        self.stop, self.check_stored = stop, check_stored


def local_checker(root: Path):  # noqa: ANN201
    async def check(names: list[str]) -> int:
        return sum(1 for n in names if not (root / n).is_file() or (root / n).stat().st_size != SIZE[0])
    return check


def start_target(kind: str, workdir: Path, rnd: int, args: argparse.Namespace, endpoint) -> Target:  # noqa: ANN001
    name = f"{kind}-{rnd}"
    root = workdir / name
    root.mkdir()
    if kind in ("pyftpdlib", "aioftp"):
        import run

        (workdir / "logs").mkdir(exist_ok=True)
        server = run.ServerProcess(kind, root, workdir / "logs", "uvloop")
        server.start()
        assert server.popen is not None
        return Target(kind, run.HOST, server.port, server.popen.pid, run.LOGIN, run.PASSWORD,
                      server.stop, local_checker(root))
    password = "bench-password"
    passive = nodes.free_port_range(args.clients + 500)
    storage, extra = "", nodes.USERS_TABLE
    if kind == "gateway-nosync":
        storage = "fsync = false\nupload_checksums = false\n"
    if kind == "gateway-s3":
        prefix = f"transfers-{uuid.uuid4().hex[:8]}"
        user_root = f"s3://{endpoint.bucket}/{prefix}"
        options = dict(endpoint.gateway_options())
        if args.s3_pool:
            options["max_pool_connections"] = args.s3_pool
        extra += "\n[storage.options]\n" + "".join(f'{k} = "{v}"\n' if isinstance(v, str) else f"{k} = {v}\n"
                                                  for k, v in options.items())
        check = s3_checker(endpoint, prefix)
    else:
        user_root = str(root)
        check = local_checker(root)
    config = nodes.node_config(root=user_root, users=nodes.static_user("bench", nodes.cheap_hash(password), user_root),
                               log=workdir / f"{name}.log", passive=passive, storage=storage, extra=extra)
    node = nodes.GatewayNode(workdir, name, config, nofile_limit=nodes.nofile()[1]).wait_ready()
    return Target(kind, node.host, node.port, node.pid, "bench", password, node.stop, check)


def s3_checker(endpoint, prefix: str):  # noqa: ANN001, ANN201
    async def check(names: list[str]) -> int:
        sizes: dict[str, int] = {}
        async with endpoint.client() as client:
            paginator = client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=endpoint.bucket, Prefix=prefix + "/"):
                for item in page.get("Contents", []):
                    sizes[item["Key"].rsplit("/", 1)[-1]] = item["Size"]
        return sum(1 for n in names if sizes.get(n) != SIZE[0])
    return check


async def phase(target: Target, direction: str, names: list[str], payload: bytes,
                timeout: float) -> dict:
    cpu = nodes.cpu_seconds(target.pid)
    with nodes.PeakSampler([target.pid]) as sampler:
        result = await timed_transfers.batch(
            target.host, target.port, names, direction, target.user, target.password,
            payload=payload, expected=SIZE[0], timeout=timeout)
    bad = await target.check_stored(names) if direction == "stor" else 0
    return {
        "result": result, "peak": sampler.peak[target.pid], "fds": sampler.peak_fds[target.pid], "hwm": nodes.vm_hwm(target.pid),
        "cpu": nodes.cpu_seconds(target.pid) - cpu, "bad_files": bad,
    }


async def measure(target: Target, clients: int, timeout: float) -> dict:
    names = [f"w{i:04d}.bin" for i in range(clients)]
    payload = os.urandom(SIZE[0])
    stor = await phase(target, "stor", names, payload, timeout)
    retr = await phase(target, "retr", names, payload, timeout)
    return {"stor": stor, "retr": retr, "base": None}


def row(kind: str, rnd: int, direction: str, data: dict, clients: int) -> tuple:
    result: timed_transfers.Batch = data["result"]
    failures = result.failed + (data["bad_files"] if result.failed == 0 else 0)
    rate = result.bytes / MIB / result.wall if result.wall else 0.0
    return (LABELS[kind], rnd, direction.upper(), f"{rate:.0f}", f"{result.wall:.2f}",
            tables.ms(tables.percentile(result.ttfb, 0.5)), tables.ms(tables.percentile(result.ttfb, 0.99)),
            tables.ms(tables.percentile(result.total, 0.99)), tables.mib(data["peak"]),
            tables.mib(data["hwm"]), data["fds"], f"{data['cpu']:.1f}", f"{failures}/{clients}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", default="gateway,gateway-nosync,pyftpdlib,gateway-s3")
    parser.add_argument("--aioftp", action="store_true", help="add aioftp to --only")
    parser.add_argument("--s3-pool", type=int, default=0,
                        help="max_pool_connections of gateway's S3 client (0: its default)")
    parser.add_argument("--file-mib", type=int, default=1, help="MiB per transfer")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 100 clients, 1 round")
    parser.add_argument("--markdown")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (configs, logs)")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.rounds = 100, 1
    SIZE[0] = args.file_mib * MIB
    kinds = [k for k in args.only.split(",") if k]
    if args.aioftp and "aioftp" not in kinds:
        kinds.append("aioftp")
    unknown = set(kinds) - set(SERVERS)
    if unknown:
        parser.error(f"--only: unknown {sorted(unknown)}; choose from {', '.join(SERVERS)}")
    nodes.raise_nofile(nodes.nofile()[1])
    import uvloop

    workdir = nodes.work_directory("gateway-transfers-", args.keep)
    endpoint, seaweed = None, None
    if "gateway-s3" in kinds:
        import s3

        endpoint, seaweed = s3.start_endpoint(workdir)
    command = "python benchmarks/concurrent_transfers.py " + " ".join(sys.argv[1:])
    rows = []
    notes = []
    try:
        for rnd in range(1, args.rounds + 1):
            order = kinds[rnd - 1:] + kinds[:rnd - 1]  # rotate: noise falls on all alike
            for kind in order:
                target = start_target(kind, workdir, rnd, args, endpoint)
                try:
                    started = time.monotonic()
                    data = uvloop.run(measure(target, args.clients, args.timeout))
                finally:
                    target.stop()
                for direction in ("stor", "retr"):
                    rows.append((kinds.index(kind), rnd, direction,
                                 row(kind, rnd, direction, data[direction], args.clients)))
                    failures = data[direction]["result"].reasons()
                    if failures:
                        notes.append(f"{LABELS[kind]}, round {rnd}, {direction.upper()}: {failures}")
                    if data[direction]["bad_files"]:
                        notes.append(f"{LABELS[kind]}, round {rnd}: {data[direction]['bad_files']} "
                                     "stored files missing or of the wrong size")
                print(f"  {kind} round {rnd}: {time.monotonic() - started:.0f} s", flush=True)
    finally:
        if seaweed is not None:
            seaweed.stop()
    rows.sort(key=lambda r: (r[0], r[2] != "stor", r[1]))
    body = (f"Command: `{command}`  \nMachine: {tables.machine()} (busy: others run tests on the "
            "same 2 cores; the client, the server and SeaweedFS share them).\n\n"
            f"{args.clients} clients at once, {args.file_mib} MiB each; TTFB = time to first byte (RETR: first "
            "data byte; STOR: the 150 reply); 'all done' = p99 of a whole transfer; CPU = the server's "
            "CPU seconds in the phase.\n\n")
    body += tables.table(("server", "round", "phase", "MiB/s", "wall s", "TTFB p50 ms", "TTFB p99 ms",
                          "all done p99 ms", "peak RSS MiB", "VmHWM MiB", "peak fds", "CPU s", "failed"),
                         [r[3] for r in rows])
    if notes:
        body += "\nFailures:\n\n" + "".join(f"- {n}\n" for n in notes)
    tables.write_report(args.markdown, "Concurrent transfers", body)


if __name__ == "__main__":
    main()
