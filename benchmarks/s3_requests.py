"""S3 requests per FTP command: gateway and rclone serve ftp, counted on the wire.

    python benchmarks/s3_requests.py [--markdown] [--delay-ms 20] [--no-rclone]

One S3 endpoint (``GATEWAY_BENCH_S3_URL`` with its keys, else SeaweedFS on loopback,
as ``s3.py`` does), and in front of it one counting proxy per FTP server
(``s3proxy.py``), so each server's requests are counted apart.  gateway runs as in
``s3.py`` (``servers.py gateway-s3``, default part size); rclone serve ftp is
configured for the same bucket through its own proxy.

Each measurement gets a fresh directory, filled directly in the bucket (not through
either server), and a fresh FTP session: log in, ``TYPE I``, ``CWD`` into that
directory, then the command.  The proxy is reset just before the command and read
once it is idle again, so requests a server makes after its reply are counted too.
The time is the FTP command's wall time (with its PASV and data connection), at a
0 ms and at a ``--delay-ms`` round trip between the server and S3 (the FTP side is
plain loopback).  Round trips are counted at ``--delay-ms``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from loadgen import ClientFailure, Control  # noqa: E402
from s3 import (  # noqa: E402
    HOST,
    LOGIN,
    MIB,
    PART_SIZE,
    PASSWORD,
    Endpoint,
    FtpServer,
    cleanup,
    render,
    start_endpoint,
    start_gateway,
    start_rclone,
)
from s3proxy import S3CountingProxy  # noqa: E402

KIB = 1024
SMALL = 4 * KIB
BIG = 20 * MIB
LISTED = 100  # files in the directory of the "LIST of 100 files" row
WORKLOAD = 100  # STORs then RETRs in the workload row

#: Short names for the breakdown cells.
SHORT = {
    "HeadObject": "HEAD",
    "GetObject": "GET",
    "PutObject": "PUT",
    "CopyObject": "COPY",
    "ListObjectsV2": "LIST",
    "ListObjects": "LISTV1",
    "ListBuckets": "LISTBUCKETS",
    "DeleteObject": "DELETE",
    "DeleteObjects": "DELETEMANY",
    "CreateMultipartUpload": "MPU",
    "UploadPart": "PART",
    "UploadPartCopy": "PARTCOPY",
    "CompleteMultipartUpload": "COMPLETE",
    "AbortMultipartUpload": "ABORT",
    "ListMultipartUploads": "LISTMPU",
    "HeadBucket": "HEADBUCKET",
    "other": "other",
}


# -- the FTP side ------------------------------------------------------------------------------


class Ftp:
    """One logged-in session on the raw client of ``loadgen.py``."""

    def __init__(self, control: Control) -> None:
        self.control = control

    @classmethod
    async def open(cls, port: int, cwd: str) -> Ftp:
        control = await Control.connect(HOST, port)
        try:
            await control.login(LOGIN, PASSWORD)
            await control.command("TYPE I", "200")
            await control.command(f"CWD {cwd}", "250")
        except BaseException:
            control.abort()
            raise
        return cls(control)

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.control.quit(), 10)
        except (ClientFailure, TimeoutError):
            self.control.abort()

    async def command(self, line: str, *codes: str) -> None:
        await self.control.command(line, *codes)

    async def listing(self, argument: str = "") -> bytes:
        reader, writer = await self.control.passive()
        try:
            await self.control.command(f"LIST {argument}".rstrip(), "150", "125")
            data = await reader.read()
        finally:
            writer.close()
        await self.control.expect("LIST-end", "226", "250")
        return data

    async def stor(self, name: str, size: int) -> None:
        reader, writer = await self.control.passive()
        try:
            await self.control.command(f"STOR {name}", "150", "125")
            sent = 0
            while sent < size:
                chunk = PAYLOAD[: min(MIB, size - sent)]
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
        finally:
            writer.close()
        await writer.wait_closed()
        await self.control.expect("STOR-end", "226", "250")

    async def retr(self, name: str, size: int) -> None:
        reader, writer = await self.control.passive(data_limit=4 * MIB)
        received = 0
        try:
            await self.control.command(f"RETR {name}", "150", "125")
            while chunk := await reader.read(MIB):
                received += len(chunk)
        finally:
            writer.close()
        await self.control.expect("RETR-end", "226", "250")
        if received != size:
            raise ClientFailure("RETR", f"got {received} bytes, expected {size}")


PAYLOAD = os.urandom(MIB)


# -- the cases ------------------------------------------------------------------------------------

Step = Callable[[Ftp], Awaitable[object]]


@dataclass(frozen=True)
class Case:
    label: str
    limit: str
    run: Step
    #: keys to create in the case's directory first ("name/" makes a directory marker)
    files: tuple[str, ...] = ()
    #: an uncounted step after CWD, before the measured one
    warmup: Step | None = None


def _numbered(count: int) -> list[str]:
    return [f"f{i:03}.bin" for i in range(count)]


async def _workload(ftp: Ftp) -> None:
    for name in _numbered(WORKLOAD):
        await ftp.stor(name, SMALL)
    for name in _numbered(WORKLOAD):
        await ftp.retr(name, SMALL)


def cases() -> list[Case]:
    parts = -(-BIG // PART_SIZE)
    return [
        Case("LIST of an empty dir", "1", lambda ftp: ftp.listing()),
        Case("MKD", "1 (+1 parent check in parallel)", lambda ftp: ftp.command("MKD new", "257")),
        Case("STOR 4 KiB", "1", lambda ftp: ftp.stor("f.bin", SMALL)),
        Case("SIZE (cold)", "1", lambda ftp: ftp.command("SIZE f.bin", "213"), ("f.bin",)),
        Case("SIZE after LIST", "1 (0 from the listing)",
             lambda ftp: ftp.command("SIZE f.bin", "213"), ("f.bin",), lambda ftp: ftp.listing()),
        Case("MDTM (cold)", "1", lambda ftp: ftp.command("MDTM f.bin", "213"), ("f.bin",)),
        Case("MDTM after LIST", "1 (0 from the listing)",
             lambda ftp: ftp.command("MDTM f.bin", "213"), ("f.bin",), lambda ftp: ftp.listing()),
        Case("RETR 4 KiB (cold)", "1", lambda ftp: ftp.retr("f.bin", SMALL), ("f.bin",)),
        Case("RETR 4 KiB after LIST", "1", lambda ftp: ftp.retr("f.bin", SMALL), ("f.bin",),
             lambda ftp: ftp.listing()),
        Case("RNFR + RNTO of a file", "3 (HEAD + COPY + DELETE)", _rename, ("f.bin",)),
        Case("DELE", "2 (HEAD + DELETE)", lambda ftp: ftp.command("DELE f.bin", "250"),
             ("f.bin",)),
        Case("RMD of an empty dir", "2 (LIST + DELETE)",
             lambda ftp: ftp.command("RMD sub", "250"), ("sub/",)),
        Case("STOR 20 MiB", f"{parts + 2} (MPU + {parts} PART + COMPLETE at "
             f"{PART_SIZE // MIB} MiB parts)", lambda ftp: ftp.stor("big.bin", BIG)),
        Case(f"LIST of a dir with {LISTED} files", "1", lambda ftp: ftp.listing(),
             tuple(_numbered(LISTED))),
        Case("CWD into a subdir", "1", lambda ftp: ftp.command("CWD sub", "250"), ("sub/",)),
        Case(f"{WORKLOAD} x STOR 4 KiB, then {WORKLOAD} x RETR 4 KiB (one session)",
             str(2 * WORKLOAD), _workload),
    ]


async def _rename(ftp: Ftp) -> None:
    await ftp.command("RNFR f.bin", "350")
    await ftp.command("RNTO g.bin", "250")


# -- measuring ---------------------------------------------------------------------------------------


@dataclass
class Measured:
    counts: dict[str, int] = field(default_factory=dict)
    total: int = 0
    round_trips: int = 0
    expect_continue: int = 0
    seconds: float = 0.0
    failure: str = ""
    others: list[str] = field(default_factory=list)


@dataclass
class Target:
    """One FTP server, its proxy and its part of the bucket."""

    name: str
    proxy: S3CountingProxy
    prefix: str
    #: the delays it is measured at
    delays: tuple[float, ...]
    server: FtpServer | None = None


@dataclass(frozen=True)
class Plan:
    """One measurement: a case on a server at a delay, in its own directory."""

    case: Case
    target: Target
    delay: float
    directory: str


async def put_keys(endpoint: Endpoint, keys: list[str]) -> None:
    """Create keys directly in the bucket (not through a server or a proxy); a key
    ending in "/" is a directory marker."""
    async with endpoint.client() as client:
        slots = asyncio.Semaphore(16)

        async def put(key: str) -> None:
            async with slots:
                body = b"" if key.endswith("/") else PAYLOAD[:SMALL]
                await client.put_object(Bucket=endpoint.bucket, Key=key, Body=body)

        await asyncio.gather(*(put(key) for key in keys))


def prepared_keys(plans: list[Plan]) -> list[str]:
    """Every directory and file the measurements start from.  They are all made before
    the servers start: both cache listings, so a directory made behind a server's back
    after it listed the parent may stay unseen."""
    keys = []
    for plan in plans:
        directory = f"{plan.target.prefix}/{plan.directory}/"
        keys.append(directory)
        keys.extend(directory + name for name in plan.case.files)
    return keys


async def measure(plan: Plan) -> Measured:
    target = plan.target
    assert target.server is not None
    proxy = target.proxy
    proxy.delay = plan.delay
    result = Measured()
    ftp: Ftp | None = None
    try:
        ftp = await Ftp.open(target.server.port, f"/{plan.directory}")
        if plan.case.warmup is not None:
            await plan.case.warmup(ftp)
        await proxy.idle()
        proxy.reset()
        started = time.perf_counter()
        try:
            await plan.case.run(ftp)
        finally:
            result.seconds = time.perf_counter() - started
            await proxy.idle()
            result.counts = proxy.counts()
            result.total = proxy.total
            result.round_trips = proxy.round_trips
            result.expect_continue = proxy.expect_continue
            result.others = proxy.others
    except ClientFailure as exc:
        result.failure = str(exc)
    finally:
        if ftp is not None:
            await ftp.close()
        proxy.delay = 0.0
    return result


async def warm_up(target: Target) -> None:
    """A first session so the measured ones find the server's S3 connections open."""
    assert target.server is not None
    ftp = await Ftp.open(target.server.port, "/warm")
    try:
        await ftp.listing()
        await ftp.stor("w.bin", SMALL)
        await ftp.retr("w.bin", SMALL)
        await ftp.command("DELE w.bin", "250")
    finally:
        await ftp.close()
    await target.proxy.idle()


# -- the run ------------------------------------------------------------------------------------------


def with_proxy(endpoint: Endpoint, proxy: S3CountingProxy) -> Endpoint:
    return Endpoint(proxy.url, endpoint.key, endpoint.secret, endpoint.region, endpoint.bucket)


async def run(args: argparse.Namespace, endpoint: Endpoint, work: Path
              ) -> tuple[list[Case], dict[str, dict[str, Measured]]]:
    delay = args.delay_ms / 1000
    run_id = uuid.uuid4().hex[:8]
    # gateway at 0 ms and at the delay; rclone at the delay only
    names = {"gateway": (0.0, delay)} if args.no_rclone else {
        "gateway": (0.0, delay), "rclone": (delay,)}
    targets = [
        Target(name, await S3CountingProxy(endpoint.url).start(), f"requests-{run_id}/{name}",
               delays)
        for name, delays in names.items()
    ]
    table = cases()
    plans = [
        Plan(case, target, value, f"case{number:02}-{value * 1000:g}ms")
        for number, case in enumerate(table, 1)
        for target in targets
        for value in target.delays
    ]
    results: dict[str, dict[str, Measured]] = {}
    try:
        await put_keys(endpoint, prepared_keys(plans)
                       + [f"{target.prefix}/warm/" for target in targets])
        for target in targets:
            start = start_gateway if target.name == "gateway" else start_rclone
            target.server = start(with_proxy(endpoint, target.proxy), target.prefix, work)
            await target.server.wait_ready()
            await warm_up(target)
        for plan in plans:
            key = f"{plan.target.name}@{plan.delay * 1000:g}"
            measured = results.setdefault(key, {})[plan.case.label] = await measure(plan)
            others = f"; other: {', '.join(measured.others)}" if measured.others else ""
            print(f"  {plan.case.label} / {key} ms: {describe(measured)}{others}",
                  file=sys.stderr, flush=True)
    finally:
        for target in targets:
            if target.server is not None:
                target.server.stop()
            await target.proxy.close()
        await cleanup(endpoint, f"requests-{run_id}/")
    return table, results


def describe(measured: Measured) -> str:
    if measured.failure:
        return f"fail: {measured.failure}"
    kinds = ", ".join(f"{SHORT[kind]} {n}" for kind, n in measured.counts.items())
    return f"{measured.total} ({kinds})" if kinds else "0"


def seconds(measured: Measured | None) -> str:
    if measured is None:
        return "-"
    if measured.failure:
        return "fail"
    if measured.seconds >= 1:
        return f"{measured.seconds:.2f} s"
    return f"{measured.seconds * 1000:.1f} ms"


def report(args: argparse.Namespace, table: list[Case],
           results: dict[str, dict[str, Measured]]) -> tuple[list[list[str]], list[str]]:
    d = f"{args.delay_ms:g} ms"
    rows = [["command", "gateway requests", f"gateway round trips ({d})",
             "gateway time 0 ms", f"gateway time {d}", "rclone requests",
             f"rclone time {d}", "the limit"]]
    fast = results.get("gateway@0", {})
    slow = results.get(f"gateway@{args.delay_ms:g}", {})
    rclone = results.get(f"rclone@{args.delay_ms:g}", {})
    for case in table:
        at0, atd, rc = fast.get(case.label), slow.get(case.label), rclone.get(case.label)
        requests = describe(at0) if at0 else "-"
        if at0 and atd and not atd.failure and atd.total != at0.total:
            requests += f" / {describe(atd)} at {d}"
        rows.append([
            case.label,
            requests,
            str(atd.round_trips) if atd and not atd.failure else "-",
            seconds(at0),
            seconds(atd),
            describe(rc) if rc else "-",
            seconds(rc),
            case.limit,
        ])
    notes = []
    for key, measured in results.items():
        expect = sum(m.expect_continue for m in measured.values())
        uploads = sum(m.counts.get("PutObject", 0) + m.counts.get("UploadPart", 0)
                      for m in measured.values())
        notes.append(f"{key.replace('@', ' at ')} ms: {expect} requests carried "
                     f"Expect: 100-continue (of {uploads} PUT + PART)")
    return rows, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-ms", type=float, default=20.0,
                        help="round-trip time added between each server and S3")
    parser.add_argument("--no-rclone", action="store_true", help="leave rclone out")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    work = Path(tempfile.mkdtemp(prefix="gateway-s3-requests-"))
    endpoint, seaweed = start_endpoint(work)
    try:
        table, results = asyncio.run(run(args, endpoint, work))
    finally:
        if seaweed is not None:
            seaweed.stop()
        shutil.rmtree(work, ignore_errors=True)
    rows, notes = report(args, table, results)
    print(render(rows, args.markdown))
    print()
    legend = ", ".join(f"{short} = {kind}" for kind, short in SHORT.items() if short != "other")
    for line in (*notes, f"Kinds: {legend}."):
        print(f"* {line}" if args.markdown else line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
