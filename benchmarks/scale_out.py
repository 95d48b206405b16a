"""Throughput scale-out: S3 downloads through 1 node vs 3 nodes behind HAProxy.

    python benchmarks/scale_out.py [--clients 24] [--seconds 15] [--rounds 2] [--markdown FILE]
    python benchmarks/scale_out.py --quick

SeaweedFS on loopback (as ``s3.py`` starts it, or ``GATEWAY_BENCH_S3_URL``) holds
``--files`` objects of ``--file-mib`` MiB, put there directly.  ``gateway serve``
nodes (127.0.0.11..13, PROXY protocol v2 from HAProxy at 127.0.0.9) serve the bucket;
each announces its own address for passive mode, so HAProxy carries the control
connections and the data goes straight from node to client (the README's "passive
ports reached directly" deployment).  ``--clients`` sessions log in through HAProxy
(round robin spreads them over the nodes) and download random objects in a loop for
``--seconds``; throughput = bytes of complete, size-checked downloads / wall time.

Also reported: the CPU seconds each party used per GiB served (the nodes, SeaweedFS,
HAProxy, this client), and how busy the machine's cores were, which says where the
ceiling is on this machine and what a larger one would give.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
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

MIB = 1 << 20
GIB = 1 << 30
PASSWORD = "bench-password"
BALANCER = "127.0.0.1"
BALANCER_SOURCE = "127.0.0.9"
NODE_HOSTS = ("127.0.0.11", "127.0.0.12", "127.0.0.13")


async def upload(endpoint, prefix: str, files: int, size: int) -> list[str]:  # noqa: ANN001
    names = [f"obj{i:03d}.bin" for i in range(files)]
    block = os.urandom(size)
    async with endpoint.client() as client:
        gate = asyncio.Semaphore(8)

        async def put(name: str) -> None:
            async with gate:
                await client.put_object(Bucket=endpoint.bucket, Key=f"{prefix}/{name}", Body=block)

        await asyncio.gather(*(put(n) for n in names))
    return names


async def download_loop(host: str, port: int, clients: int, seconds: float, names: list[str],
                        size: int) -> dict:
    done = {"bytes": 0, "files": 0}
    ttfb: list[float] = []
    failures: Counter[str] = Counter()
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        try:
            control = await loadgen.Control.connect(host, port)
            await control.login("bench", PASSWORD)
            await control.command("TYPE I", "200")
            while time.perf_counter() < deadline:
                reader, writer = await control.passive(data_limit=4 * MIB)
                started = time.perf_counter()
                await control.command(f"RETR {random.choice(names)}", "150", "125")
                first = None
                received = 0
                while chunk := await reader.read(MIB):
                    if first is None:
                        first = time.perf_counter() - started
                    received += len(chunk)
                writer.close()
                await control.expect("RETR-end", "226")
                if received != size:
                    raise loadgen.ClientFailure("RETR-size", f"{received} bytes, expected {size}")
                done["bytes"] += received
                done["files"] += 1
                ttfb.append(first or 0.0)
            await control.quit()
        except (loadgen.ClientFailure, OSError, TimeoutError) as exc:
            failures[str(exc)[:80]] += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return {**done, "wall": time.perf_counter() - started, "ttfb": ttfb, "failures": failures}


def start_nodes(workdir: Path, name: str, count: int, endpoint, prefix: str) -> list[nodes.GatewayNode]:  # noqa: ANN001
    root = f"s3://{endpoint.bucket}/{prefix}"
    options = "".join(f'{k} = "{v}"\n' for k, v in endpoint.gateway_options().items())
    started: list[nodes.GatewayNode] = []
    taken: set[int] = set()
    try:
        for index in range(count):
            host = NODE_HOSTS[index]
            config = nodes.node_config(
                root=root, host=host, log=workdir / f"{name}-node{index}.log", balancer=BALANCER_SOURCE,
                passive=nodes.free_port_range(200, (host,), taken), passive_address=host,
                users=nodes.static_user("bench", nodes.cheap_hash(PASSWORD), root),
                extra=nodes.USERS_TABLE + "\n[storage.options]\n" + options)
            started.append(nodes.GatewayNode(workdir, f"{name}-node{index}", config).wait_ready())
    except BaseException:
        for node in started:
            node.stop()
        raise
    return started


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all cores from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def measure(args: argparse.Namespace, workdir: Path, endpoint, weed_pid: int | None, prefix: str,  # noqa: ANN001
            names: list[str], count: int, rnd: int) -> dict:
    import uvloop

    name = f"scale{count}-{rnd}"
    started = start_nodes(workdir, name, count, endpoint, prefix)
    port = nodes.free_port_range(1, (BALANCER,), low=31000, high=33000).start
    proxy = None
    try:
        proxy = nodes.HAProxy(workdir, nodes.haproxy_config(
            (BALANCER, port), [(n.host, n.port) for n in started], BALANCER_SOURCE), port)
        # every node in rotation before the clock starts (first health checks)
        deadline = time.monotonic() + 30
        while not all("logged in" in _log(n) for n in started):
            if time.monotonic() > deadline:
                raise RuntimeError("HAProxy did not reach every node")
            uvloop.run(_login_once(port))
        pids = {f"node{i}": n.pid for i, n in enumerate(started)} | {"haproxy": proxy.pid}
        if weed_pid:
            pids["seaweedfs"] = weed_pid
        before = {k: nodes.cpu_seconds(p) for k, p in pids.items()}
        client_before = client_cpu()
        busy_before = machine_busy()
        logins_before = [_log(n).count("logged in") for n in started]
        result = uvloop.run(download_loop(BALANCER, port, args.clients, args.seconds, names,
                                          args.file_mib * MIB))
        busy_after = machine_busy()
        result["cpu"] = {k: nodes.cpu_seconds(p) - before[k] for k, p in pids.items()}
        result["cpu"]["client"] = client_cpu() - client_before
        result["busy"] = (busy_after[0] - busy_before[0]) / max(1, busy_after[1] - busy_before[1])
        result["sessions"] = [_log(n).count("logged in") - b for n, b in zip(started, logins_before, strict=True)]
        return result
    finally:
        if proxy:
            proxy.stop()
        for node in started:
            node.stop()


async def _login_once(port: int) -> None:
    control = await loadgen.Control.connect(BALANCER, port)
    await control.login("bench", PASSWORD)
    await control.quit()


def _log(node: nodes.GatewayNode) -> str:
    path = node.config_path.with_suffix(".log")
    return path.read_text(errors="replace") if path.exists() else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--file-mib", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 4 s per setup, 1 round")
    parser.add_argument("--markdown")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (configs, logs)")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds, args.files, args.file_mib, args.clients = 4.0, 1, 4, 4, 6
    import s3

    workdir = nodes.work_directory("gateway-scale-", args.keep)
    endpoint, seaweed = s3.start_endpoint(workdir)
    weed_pid = seaweed.process.pid if seaweed is not None and seaweed.process is not None else None
    command = "python benchmarks/scale_out.py " + " ".join(sys.argv[1:])
    results = []
    try:
        prefix = f"scale-{uuid.uuid4().hex[:8]}"
        names = asyncio.run(upload(endpoint, prefix, args.files, args.file_mib * MIB))
        for rnd in range(1, args.rounds + 1):
            for count in ((1, 3) if rnd % 2 else (3, 1)):
                result = measure(args, workdir, endpoint, weed_pid, prefix, names, count, rnd)
                results.append((count, rnd, result))
                print(f"  round {rnd}, {count} node(s): {result['bytes'] / MIB / result['wall']:.0f} MiB/s",
                      flush=True)
    finally:
        if seaweed is not None:
            seaweed.stop()
    results.sort(key=lambda r: (r[0], r[1]))
    body = (f"Command: `{command}`  \nMachine: {tables.machine()} (busy: others run tests on the same "
            "2 cores; SeaweedFS, HAProxy, the nodes and the client share them).\n\n"
            f"{args.clients} sessions through HAProxy, each downloading random {args.file_mib} MiB objects "
            f"(of {args.files}) in a loop for {args.seconds:g} s; data connections go straight to the "
            "node. CPU columns: CPU seconds per GiB delivered.\n\n")
    rows = []
    for count, rnd, result in results:
        gib = result["bytes"] / GIB or 1
        cpu = result["cpu"]
        node_cpu = sum(v for k, v in cpu.items() if k.startswith("node"))
        rows.append((f"{count} node{'s' if count > 1 else ''} behind HAProxy", rnd,
                     f"{result['bytes'] / MIB / result['wall']:.0f}", result["files"],
                     tables.ms(tables.percentile(result["ttfb"], 0.99)),
                     "/".join(str(s) for s in result["sessions"]),
                     f"{node_cpu / gib:.2f}", f"{cpu.get('seaweedfs', 0) / gib:.2f}",
                     f"{cpu['haproxy'] / gib:.3f}", f"{cpu['client'] / gib:.2f}",
                     f"{result['busy']:.0%}", sum(result["failures"].values())))
    body += tables.table(("setup", "round", "MiB/s", "files", "TTFB p99 ms", "sessions per node",
                          "nodes CPU s/GiB", "SeaweedFS CPU s/GiB", "HAProxy CPU s/GiB", "client CPU s/GiB",
                          "cores busy", "failed"), rows)
    failures: Counter[str] = Counter()
    for *_, result in results:
        failures.update(result["failures"])
    if failures:
        body += "\nFailures: " + "; ".join(f"{n}x {r}" for r, n in failures.most_common(5)) + "\n"
    tables.write_report(args.markdown, "Throughput scale-out (S3 downloads)", body)


if __name__ == "__main__":
    main()
