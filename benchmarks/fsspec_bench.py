"""fsspec backend against the native backends it can stand in for, side by side.

    python benchmarks/fsspec_bench.py [--size-mib 256] [--rounds 3] [--markdown out.md]

One gateway server process serves four users: native local disk, ``fsspec+file://``
(fsspec's local filesystem, run in threads), native ``s3://`` and ``fsspec+s3://``
(s3fs), the S3 ones on the same endpoint: SeaweedFS started on loopback (as the
tests do), or the endpoint named by ``GATEWAY_TEST_S3_URL`` with
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``.  curl moves one file up (STOR)
and down (RETR) per user per round; rounds are interleaved in a rotating order and
the median is reported, with the ratio fsspec / native (target: at least 0.70).
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from tests.s3.seaweed import REGION, S3Endpoint, SeaweedS3  # noqa: E402

HOST = "127.0.0.1"
MIB = 1 << 20
PAIRS = (("local", "fsspec-local"), ("s3", "s3fs"))

SERVER = r"""
import asyncio, json, sys
from gateway import Server, User, Permission
config = json.loads(sys.argv[1])
async def main():
    users = [User(name, name, base_path=root, permissions=[Permission("/", readable=True, writable=True)])
             for name, root in config["roots"].items()]
    server = Server(users, storage_options=config["options"])
    await server.start("127.0.0.1", 0)
    print(server.server_port, flush=True)
    await server.serve_forever()
asyncio.run(main())
"""


def endpoint(tmp: Path) -> tuple[S3Endpoint, SeaweedS3 | None]:
    url = os.environ.get("GATEWAY_TEST_S3_URL")
    if url:
        return S3Endpoint(url, os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"],
                          os.environ.get("AWS_DEFAULT_REGION", REGION),
                          os.environ.get("GATEWAY_TEST_S3_BUCKET", "gateway-test")), None
    server = SeaweedS3(tmp / "seaweedfs")
    return server.start(), server


def curl(args: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(["curl", "-sS", "--fail", *args], capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"curl {' '.join(args)} failed: {done.stderr.strip()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gw-fsspec-bench-") as tmp_name:
        tmp = Path(tmp_name)
        s3, seaweed = endpoint(tmp)
        try:
            run(args, tmp, s3)
        finally:
            if seaweed is not None:
                seaweed.stop()


def run(args: argparse.Namespace, tmp: Path, s3: S3Endpoint) -> None:
    prefix = f"bench-{os.getpid()}"
    for name in ("local", "fsspec-local"):
        (tmp / name).mkdir()
    roots = {
        "local": str(tmp / "local"),
        "fsspec-local": f"fsspec+file://{tmp / 'fsspec-local'}",
        "s3": f"s3://{s3.bucket}/{prefix}/native",
        "s3fs": f"fsspec+s3://{s3.bucket}/{prefix}/s3fs",
    }
    config = {"roots": roots, "options": s3.options()}
    source = tmp / "source.bin"
    with open(source, "wb") as out:
        for _ in range(args.size_mib):
            out.write(os.urandom(MIB))
    server = subprocess.Popen([sys.executable, "-c", SERVER, json.dumps(config)],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        times: dict[tuple[str, str], list[float]] = {}
        names = [name for pair in PAIRS for name in pair]
        for rnd in range(args.rounds):
            order = names[rnd % len(names):] + names[: rnd % len(names)]
            for name in order:
                url = f"ftp://{name}:{name}@{HOST}:{port}/big.bin"
                times.setdefault((name, "STOR"), []).append(curl(["-T", str(source), url]))
                times.setdefault((name, "RETR"), []).append(curl(["-o", os.devnull, url]))
                print(f"round {rnd + 1}: {name} done", file=sys.stderr)
    finally:
        server.terminate()
        server.wait(10)
    report(args, times)


def report(args: argparse.Namespace, times: dict[tuple[str, str], list[float]]) -> None:
    def speed(name: str, op: str) -> float:
        return args.size_mib / statistics.median(times[(name, op)])

    lines = [
        f"STOR and RETR of {args.size_mib} MiB, curl on loopback, median of {args.rounds} rounds",
        "",
        "| transfer | native MiB/s | fsspec MiB/s | fsspec / native |",
        "| --- | ---: | ---: | ---: |",
    ]
    for native, fsspec_name in PAIRS:
        for op in ("STOR", "RETR"):
            a, b = speed(native, op), speed(fsspec_name, op)
            lines.append(f"| {op} {native} vs {fsspec_name} | {a:.0f} | {b:.0f} | {b / a:.2f} |")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
