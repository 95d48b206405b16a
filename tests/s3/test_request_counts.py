"""How many S3 requests each FTP command costs, counted on the wire.

A :class:`~benchmarks.s3proxy.S3CountingProxy` sits between a real gateway server
(user rooted in ``s3://bucket/<prefix>/alice``) and the test S3 endpoint.  Each
measurement resets the proxy, runs one FTP command (ftplib in a worker thread), waits
until the proxy is idle (background work included) and compares the total with
``EXPECTED``.  State a command needs (files, directories) is put into the bucket
directly, before the session starts, so no cache of the server knows it yet.

Every session starts with ``CWD /work``: the commands run in a subdirectory, as a
device's would, not in the served root (which always exists and costs nothing to
check).
"""

from __future__ import annotations

import asyncio
import ftplib
import io
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from benchmarks.s3proxy import RequestStream, ResponseStream, S3CountingProxy, classify
from gateway import Server, User

from .conftest import PART_SIZE, raw_client
from .seaweed import S3Endpoint

#: S3 requests per FTP command: the targets.  Edit here when the backend changes.
EXPECTED: dict[str, int] = {
    # LIST of the (empty) cwd: one ListObjectsV2 of its prefix
    "list_cwd": 1,
    # LIST sub (an empty subdirectory): one ListObjectsV2 of the cwd says sub is a
    # directory (LIST of a file lists the file; of nothing, 550), then the listing of
    # sub/ itself: limit + 1
    "list_subdir": 2,
    # CWD sub: one ListObjectsV2 of the parent (remembered: it answers for sub's
    # siblings too)
    "cwd": 1,
    # MKD new: one ListObjectsV2 of the cwd (is the name taken? S3 would overwrite
    # silently) + PutObject of new/
    "mkd": 2,
    # STOR 4 KiB in a directory never listed: one ListObjectsV2 of the directory (is
    # the name a directory?) + PutObject
    "stor_4k": 2,
    # SIZE of a file never seen: one ListObjectsV2 of its directory (it answers for
    # every sibling too)
    "size_cold": 1,
    # SIZE right after a LIST of its directory: the listing said the size
    "size_after_list": 0,
    # RETR 4 KiB never seen: GetObject (a 404 on it is the 550)
    "retr_4k_cold": 1,
    # DELE: HeadObject (S3 deletes missing keys without an error; 550 needs to know)
    # + DeleteObject
    "dele": 2,
    # RMD of an empty directory: ListObjectsV2 (empty? exists?) + DeleteObject of
    # its marker
    "rmd": 2,
    # RNFR's listing of the directory (it answers for the destination too) + RNTO's
    # CopyObject + DeleteObject of the source
    "rename": 3,
    # 20 x STOR 4 KiB then 20 x RETR of them in one session: the first STOR's
    # directory check (ListObjectsV2), 20 PutObject, 20 GetObject
    "stor_retr_20": 41,
}

HOST = "127.0.0.1"
STEP = 60.0
KIB = 1024
SMALL = os.urandom(4 * KIB)


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
async def proxy(s3_service: S3Endpoint) -> AsyncIterator[S3CountingProxy]:
    counting = await S3CountingProxy(s3_service.endpoint_url).start()
    try:
        yield counting
    finally:
        await counting.close()


@pytest.fixture
async def ftp_server(
    s3_service: S3Endpoint, s3_options: dict[str, Any], s3_prefix: str,
    proxy: S3CountingProxy,
) -> AsyncIterator[Server]:
    """A server whose user "alice" lives in ``s3://bucket/<prefix>/alice``, reached
    through the counting proxy."""
    root = f"s3://{s3_service.bucket}/{s3_prefix}/alice"
    server = Server([User("alice", "secret", base_path=root)],
                    storage_options=dict(s3_options, endpoint_url=proxy.url))
    await server.start(HOST, 0)
    try:
        yield server
    finally:
        async with asyncio.timeout(STEP):
            await server.close()


async def put_keys(endpoint: S3Endpoint, prefix: str, names: tuple[str, ...]) -> None:
    """Put ``prefix + name`` for each name directly into the bucket, not through the
    gateway or the proxy; "" or a name ending in "/" makes a directory marker."""
    async with raw_client(endpoint) as client:
        await asyncio.gather(*(
            client.put_object(Bucket=endpoint.bucket, Key=prefix + name,
                              Body=b"" if name[-1:] in ("", "/") else SMALL)
            for name in names
        ))


@dataclass
class Measured:
    counts: dict[str, int]
    total: int
    round_trips: int
    expect_continue: int

    def describe(self) -> str:
        kinds = ", ".join(f"{kind} {n}" for kind, n in self.counts.items()) or "none"
        return (f"{self.total} requests ({kinds}); {self.round_trips} round trips; "
                f"{self.expect_continue} with Expect: 100-continue")


class Session:
    """One logged-in ftplib session whose commands run in a worker thread."""

    def __init__(self, server: Server, proxy: S3CountingProxy) -> None:
        self.proxy = proxy
        assert server.server_port is not None
        self.ftp = ftplib.FTP(timeout=STEP)
        self.ftp.connect(HOST, server.server_port)
        self.ftp.login("alice", "secret")

    async def run(self, func: Callable[..., Any], *args: Any) -> Any:
        async with asyncio.timeout(STEP):
            return await asyncio.to_thread(func, *args)

    async def measure(self, func: Callable[..., Any], *args: Any) -> Measured:
        """Run ``func(ftp, *args)`` and count what it cost once the proxy is idle."""
        await self.proxy.idle()
        self.proxy.reset()
        await self.run(func, self.ftp, *args)
        await self.proxy.idle()
        assert not self.proxy.errors, self.proxy.errors
        return Measured(self.proxy.counts(), self.proxy.total, self.proxy.round_trips,
                        self.proxy.expect_continue)

    def close(self) -> None:
        try:
            self.ftp.quit()
        except (OSError, EOFError, ftplib.Error):
            self.ftp.close()


Opener = Callable[..., Awaitable[Session]]


@pytest.fixture
async def open_session(
    ftp_server: Server, proxy: S3CountingProxy, s3_service: S3Endpoint, s3_prefix: str
) -> AsyncIterator[Opener]:
    """``await open_session("f.bin", "sub/")``: the keys are put below ``/work`` first,
    then a session logs in, sends ``TYPE I`` and ``CWD /work``.  The state exists
    before the session starts, so no listing the server may cache can miss it."""
    opened: list[Session] = []

    async def open_(*names: str) -> Session:
        await put_keys(s3_service, f"{s3_prefix}/alice/work/", ("", *names))
        session = await asyncio.to_thread(Session, ftp_server, proxy)
        opened.append(session)
        await session.run(session.ftp.voidcmd, "TYPE I")
        await session.run(session.ftp.cwd, "/work")
        return session

    try:
        yield open_
    finally:
        for session in opened:
            await asyncio.to_thread(session.close)


def check(name: str, measured: Measured) -> None:
    print(f"{name}: {measured.describe()}")  # shown by pytest -rA or -s
    assert measured.total == EXPECTED[name], (
        f"{name}: expected {EXPECTED[name]} S3 requests, got {measured.describe()}"
    )


# -- the FTP commands as ftplib calls ---------------------------------------------------------


def listing(ftp: ftplib.FTP, *args: str) -> list[str]:
    found: list[str] = []
    ftp.retrlines(" ".join(("LIST", *args)), found.append)
    return found


def stor(ftp: ftplib.FTP, name: str, data: bytes = SMALL) -> None:
    ftp.storbinary(f"STOR {name}", io.BytesIO(data))


def retr(ftp: ftplib.FTP, name: str) -> bytes:
    chunks: list[bytes] = []
    ftp.retrbinary(f"RETR {name}", chunks.append)
    return b"".join(chunks)


# -- one command each -----------------------------------------------------------------------------


async def test_list_of_empty_cwd(open_session: Opener) -> None:
    session = await open_session()
    measured = await session.measure(listing)
    check("list_cwd", measured)


async def test_list_of_subdirectory(open_session: Opener) -> None:
    session = await open_session("sub/")
    measured = await session.measure(listing, "sub")
    check("list_subdir", measured)


async def test_cwd_into_subdirectory(open_session: Opener) -> None:
    session = await open_session("sub/")
    measured = await session.measure(lambda ftp: ftp.cwd("sub"))
    assert await session.run(session.ftp.pwd) == "/work/sub"
    check("cwd", measured)


async def test_mkd(open_session: Opener) -> None:
    session = await open_session()
    measured = await session.measure(lambda ftp: ftp.mkd("new"))
    check("mkd", measured)


async def test_stor_4k(open_session: Opener) -> None:
    session = await open_session()
    measured = await session.measure(stor, "f.bin")
    check("stor_4k", measured)


async def test_size_cold(open_session: Opener) -> None:
    session = await open_session("f.bin")
    measured = await session.measure(lambda ftp: ftp.size("f.bin"))
    check("size_cold", measured)


async def test_size_after_list(open_session: Opener) -> None:
    session = await open_session("f.bin")
    await session.measure(listing)
    measured = await session.measure(lambda ftp: ftp.size("f.bin"))
    check("size_after_list", measured)


async def test_retr_4k_cold(open_session: Opener) -> None:
    session = await open_session("f.bin")
    measured = await session.measure(retr, "f.bin")
    check("retr_4k_cold", measured)


async def test_dele(open_session: Opener) -> None:
    session = await open_session("f.bin")
    measured = await session.measure(lambda ftp: ftp.delete("f.bin"))
    check("dele", measured)


async def test_rmd_of_empty_directory(open_session: Opener) -> None:
    session = await open_session("sub/")
    measured = await session.measure(lambda ftp: ftp.rmd("sub"))
    check("rmd", measured)


async def test_rename_a_file(open_session: Opener) -> None:
    session = await open_session("f.bin")
    measured = await session.measure(lambda ftp: ftp.rename("f.bin", "g.bin"))
    check("rename", measured)


async def test_20_stor_then_20_retr_in_one_session(open_session: Opener) -> None:
    session = await open_session()
    names = [f"f{i:02}.bin" for i in range(20)]

    def workload(ftp: ftplib.FTP) -> None:
        for name in names:
            stor(ftp, name)
        for name in names:
            if retr(ftp, name) != SMALL:
                raise AssertionError(f"RETR {name}: wrong bytes")

    measured = await session.measure(workload)
    check("stor_retr_20", measured)


async def test_no_request_waits_for_100_continue(open_session: Opener) -> None:
    """``Expect: 100-continue`` costs a round trip per upload on a slow link."""
    session = await open_session()
    small = await session.measure(stor, "small.bin")
    multipart = await session.measure(stor, "big.bin", os.urandom(PART_SIZE + KIB))
    renamed = await session.measure(lambda ftp: ftp.rename("small.bin", "moved.bin"))
    for what, measured in (("STOR 4 KiB", small), ("STOR multipart", multipart),
                           ("RNFR/RNTO", renamed)):
        assert measured.expect_continue == 0, f"{what}: {measured.describe()}"


# -- the proxy itself ------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "target", "headers", "kind"), [
    ("HEAD", "/b/k", {}, "HeadObject"),
    ("GET", "/b/dir/k?partNumber=1", {}, "GetObject"),
    ("PUT", "/b/k", {}, "PutObject"),
    ("PUT", "/b/k", {"x-amz-copy-source": "/b/j"}, "CopyObject"),
    ("GET", "/b?list-type=2&prefix=a%2F&delimiter=%2F", {}, "ListObjectsV2"),
    ("GET", "/b/?list-type=2", {}, "ListObjectsV2"),
    ("GET", "/", {}, "ListBuckets"),
    ("DELETE", "/b/k", {}, "DeleteObject"),
    ("POST", "/b?delete", {}, "DeleteObjects"),
    ("POST", "/b/k?uploads", {}, "CreateMultipartUpload"),
    ("PUT", "/b/k?partNumber=2&uploadId=u", {}, "UploadPart"),
    ("PUT", "/b/k?partNumber=2&uploadId=u", {"x-amz-copy-source": "/b/j"}, "UploadPartCopy"),
    ("POST", "/b/k?uploadId=u", {}, "CompleteMultipartUpload"),
    ("DELETE", "/b/k?uploadId=u", {}, "AbortMultipartUpload"),
    ("GET", "/b?uploads&prefix=a", {}, "ListMultipartUploads"),
    ("HEAD", "/b", {}, "HeadBucket"),
    ("GET", "/b?delimiter=%2F&prefix=a%2F", {}, "ListObjects"),
    ("GET", "/b?versions", {}, "other"),
    ("PUT", "/b", {}, "other"),
    ("GET", "/b/k?tagging", {}, "other"),
])
def test_classify(method: str, target: str, headers: dict[str, str], kind: str) -> None:
    assert classify(method, target, headers) == kind


async def test_proxy_counts_every_operation_and_adds_latency(
    s3_service: S3Endpoint, s3_prefix: str, proxy: S3CountingProxy
) -> None:
    """Known calls through the proxy give known counts; at a 10 ms round trip, N
    serial requests take at least N x 10 ms and count as N round trips."""
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    name, key = s3_service.bucket, f"{s3_prefix}/p/"
    async with get_session().create_client(
        "s3", endpoint_url=proxy.url, region_name=s3_service.region,
        aws_access_key_id=s3_service.access_key, aws_secret_access_key=s3_service.secret_key,
        config=AioConfig(s3={"addressing_style": "path"}),
    ) as client:
        await client.head_bucket(Bucket=name)  # a pooled connection for what follows
        await proxy.idle()
        proxy.reset()
        await client.put_object(Bucket=name, Key=key + "a", Body=b"a")
        await asyncio.gather(*(client.head_object(Bucket=name, Key=key + "a")
                               for _ in range(3)))
        await client.copy_object(Bucket=name, Key=key + "b",
                                 CopySource={"Bucket": name, "Key": key + "a"})
        body = (await client.get_object(Bucket=name, Key=key + "b"))["Body"]
        async with body:
            assert await body.read() == b"a"
        upload = await client.create_multipart_upload(Bucket=name, Key=key + "m")
        part = await client.upload_part(Bucket=name, Key=key + "m", PartNumber=1,
                                        UploadId=upload["UploadId"], Body=b"x" * 100)
        await client.complete_multipart_upload(
            Bucket=name, Key=key + "m", UploadId=upload["UploadId"],
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
        )
        await client.list_objects_v2(Bucket=name, Prefix=key, Delimiter="/")
        await client.delete_objects(Bucket=name, Delete={"Objects": [{"Key": key + "a"}]})
        await client.delete_object(Bucket=name, Key=key + "b")
        await proxy.idle()
        assert proxy.counts() == {
            "CompleteMultipartUpload": 1, "CopyObject": 1, "CreateMultipartUpload": 1,
            "DeleteObject": 1, "DeleteObjects": 1, "GetObject": 1, "HeadObject": 3,
            "ListObjectsV2": 1, "PutObject": 1, "UploadPart": 1,
        }
        assert proxy.total == 12
        assert 10 <= proxy.round_trips <= 12  # the three HEADs overlap, mostly
        assert proxy.errors == []

        proxy.delay = 0.01
        proxy.reset()
        started = time.perf_counter()
        for _ in range(5):
            await client.head_object(Bucket=name, Key=key + "m")
        elapsed = time.perf_counter() - started
        await proxy.idle()
        assert proxy.counts() == {"HeadObject": 5} and proxy.round_trips == 5
        assert elapsed >= 5 * 0.01
        await client.delete_object(Bucket=name, Key=key + "m")


def _framing(*exchanges: list[bytes]) -> tuple[list[str], list[str]]:
    """Feed request pieces, response pieces, request pieces...; the requests started
    and the requests answered, by kind."""
    pending: deque[Any] = deque()
    started: list[str] = []
    finished: list[str] = []

    def on_request(request: Any) -> None:
        pending.append(request)
        started.append(request.kind)

    sent = RequestStream(on_request)
    answered = ResponseStream(pending, lambda request: finished.append(request.kind))
    for index, pieces in enumerate(exchanges):
        for piece in pieces:
            (answered if index % 2 else sent).feed(piece)
    return started, finished


def test_framing_holds_wherever_the_stream_is_cut() -> None:
    """Bodies by length and chunked, 100 Continue, HEAD: the same requests and answers
    however the bytes arrive."""
    requests = (
        b"PUT /b/k HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        b"hello"
        b"PUT /b/k?partNumber=1&uploadId=u HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;ext=1\r\nabc\r\n0\r\nx-amz-checksum-crc32: AAAAAA==\r\n\r\n"
        b"GET /b?list-type=2 HTTP/1.1\r\n\r\n"
        b"HEAD /b/k HTTP/1.1\r\n\r\n"
    )
    responses = (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nxml"
        b"HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n"
    )
    kinds = ["PutObject", "UploadPart", "ListObjectsV2", "HeadObject"]
    for cut in range(len(requests) + 1):
        assert _framing([requests[:cut], requests[cut:]], [responses]) == (kinds, kinds), cut
    for cut in range(len(responses) + 1):
        assert _framing([requests], [responses[:cut], responses[cut:]]) == (kinds, kinds), cut


def test_framing_a_body_dropped_after_a_final_answer_to_expect() -> None:
    """A client told "no" before sending its body may send the next request instead."""
    assert _framing(
        [b"PUT /b/k HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"],
        [b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"],
        [b"GET /b/k HTTP/1.1\r\n\r\n"],
        [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"],
    ) == (["PutObject", "GetObject"], ["PutObject", "GetObject"])
