"""What computing checksums during uploads costs: STOR with them on and off, side by side.

    python benchmarks/checksums.py [--size-mib 256] [--rounds 5] [--fsync] [--only local|s3]
                                   [--checksums sha256,crc32] [--rate 400M] [--markdown out.md]

One server process runs two gateway servers that differ only in
``upload_checksums`` (on: the default set, or ``--checksums``; off).  Each serves a user
on local disk and one on S3 (SeaweedFS started on loopback as the tests do, or the
endpoint named by ``GATEWAY_TEST_S3_URL`` with ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY``).  curl uploads one file per case per round; rounds are
interleaved in a rotating order, local files are synced to disk outside the timed part
(as ``run.py`` does), and the median is reported with the ratio on / off (target: at
least 0.90).  The server's CPU time per GiB uploaded is reported too: it is the cost
itself, where the throughput also shows how much of it the spare cores absorb.

Local disk is the library's default ``PathIO`` (no fsync: the hardest case, nothing
hides the hashing); ``--fsync`` uses ``DurablePathIO`` as ``gateway serve`` does.
``--workdir`` should be on a real disk, not tmpfs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from tests.s3.seaweed import REGION, S3Endpoint, SeaweedS3  # noqa: E402

HOST = "127.0.0.1"
MIB = 1 << 20
MODES = ("off", "on")

SERVER = r"""
import asyncio, json, sys
from backends import DurablePathIO, PathIO
from gateway import Permission, Server, User
config = json.loads(sys.argv[1])
async def main():
    ports = {}
    for mode in ("off", "on"):
        users = [User(name, name, base_path=root, permissions=[Permission("/", readable=True, writable=True)])
                 for name, root in config["roots"][mode].items()]
        server = Server(users, storage_options=config["options"],
                        path_io_factory=DurablePathIO if config["fsync"] else PathIO,
                        upload_checksums=config["checksums"] if mode == "on" else False)
        await server.start("127.0.0.1", 0)
        ports[mode] = server.server_port
    print(json.dumps(ports), flush=True)
    await asyncio.Event().wait()
try:
    import uvloop
except ImportError:
    asyncio.run(main())
else:
    uvloop.run(main())
"""


def endpoint(tmp: Path) -> tuple[S3Endpoint, SeaweedS3 | None]:
    url = os.environ.get("GATEWAY_TEST_S3_URL")
    if url:
        return S3Endpoint(url, os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"],
                          os.environ.get("AWS_DEFAULT_REGION", REGION),
                          os.environ.get("GATEWAY_TEST_S3_BUCKET", "gateway-test")), None
    server = SeaweedS3(tmp / "seaweedfs")
    return server.start(), server


def filesystem_of(path: Path) -> str:
    best = ""
    kind = "?"
    for part in psutil.disk_partitions(all=True):
        if str(path).startswith(part.mountpoint) and len(part.mountpoint) > len(best):
            best, kind = part.mountpoint, part.fstype
    return kind


def curl_upload(source: Path, url: str, rate: str | None) -> float:
    limit = ["--limit-rate", rate] if rate else []
    start = time.perf_counter()
    done = subprocess.run(["curl", "-sS", "--fail", *limit, "-T", str(source), url],
                          capture_output=True, text=True, timeout=900)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"curl -T {url} failed: {done.stderr.strip()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fsync", action="store_true", help="DurablePathIO, as gateway serve")
    parser.add_argument("--only", choices=("local", "s3"),
                        help="one backend (SeaweedFS on the same machine takes CPU from local runs)")
    parser.add_argument("--rate", help="the client's upload speed (curl --limit-rate, e.g. 400M): "
                        "a network link instead of loopback")
    parser.add_argument("--checksums", help="algorithms when on, e.g. sha256,crc32,md5 "
                        "(default: the server's default set)")
    parser.add_argument("--workdir", type=Path, help="where files go (default: a temporary directory)")
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gw-checksums-bench-", dir=args.workdir) as name:
        tmp = Path(name)
        s3, seaweed = (None, None) if args.only == "local" else endpoint(tmp)
        try:
            run(args, tmp, s3)
        finally:
            if seaweed is not None:
                seaweed.stop()


def run(args: argparse.Namespace, tmp: Path, s3: S3Endpoint | None) -> None:
    prefix = f"bench-checksums-{os.getpid()}"
    roots: dict[str, dict[str, str]] = {}
    for mode in MODES:
        (tmp / mode).mkdir()
        roots[mode] = {"local": str(tmp / mode)}
        if s3 is not None:
            roots[mode]["s3"] = f"s3://{s3.bucket}/{prefix}/{mode}"
    config = {"roots": roots, "options": s3.options() if s3 else {}, "fsync": args.fsync,
              "checksums": args.checksums.split(",") if args.checksums else True}
    source = tmp / "source.bin"
    with open(source, "wb") as out:
        for _ in range(args.size_mib):
            out.write(os.urandom(MIB))
    server = subprocess.Popen([sys.executable, "-c", SERVER, json.dumps(config)],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    process = psutil.Process(server.pid)
    times: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    try:
        assert server.stdout is not None
        ports = json.loads(server.stdout.readline())
        backends = [args.only] if args.only else list(roots["on"])
        cases = [(backend, mode) for backend in backends for mode in MODES]
        for rnd in range(args.rounds):
            order = cases[rnd % len(cases):] + cases[: rnd % len(cases)]
            for backend, mode in order:
                url = f"ftp://{backend}:{backend}@{HOST}:{ports[mode]}/big-{rnd}.bin"
                before = sum(process.cpu_times()[:2])
                elapsed = curl_upload(source, url, args.rate)
                used = sum(process.cpu_times()[:2]) - before
                times.setdefault((backend, mode), []).append(elapsed)
                cpu.setdefault((backend, mode), []).append(used)
                if backend == "local":
                    os.sync()  # the next case does not pay for this one's write-back
                    (tmp / mode / f"big-{rnd}.bin").unlink()
            print(f"round {rnd + 1} done", file=sys.stderr)
    finally:
        server.terminate()
        server.wait(10)
    report(args, tmp, times, cpu)


def report(args: argparse.Namespace, tmp: Path, times: dict[tuple[str, str], list[float]],
           cpu: dict[tuple[str, str], list[float]]) -> None:
    size = args.size_mib

    def speed(case: tuple[str, str]) -> float:
        return size / statistics.median(times[case])

    def cost(case: tuple[str, str]) -> float:
        return statistics.median(cpu[case]) / (size / 1024)

    disk = "DurablePathIO (fsync)" if args.fsync else "PathIO (no fsync)"
    local = "" if args.only == "s3" else f"local disk: {disk} on {filesystem_of(tmp)}; "
    lines = [
        f"STOR of {size} MiB with curl on loopback, median of {args.rounds} interleaved rounds; "
        f"{local}checksums on: {args.checksums or 'the default set'}; "
        f"client rate: {args.rate or 'unlimited'}; {os.cpu_count()} CPUs",
        "",
        "| backend | off MiB/s | on MiB/s | on / off | server CPU s/GiB off | on |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for backend in sorted({backend for backend, _ in times}):
        off, on = speed((backend, "off")), speed((backend, "on"))
        lines.append(
            f"| {backend} | {off:.0f} | {on:.0f} | {on / off:.2f} | "
            f"{cost((backend, 'off')):.2f} | {cost((backend, 'on')):.2f} |"
        )
    lines += ["", "Every round (MiB/s):", ""]
    for case in sorted(times):
        rates = ", ".join(f"{size / t:.0f}" for t in times[case])
        lines.append(f"- {case[0]} {case[1]}: {rates}")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
