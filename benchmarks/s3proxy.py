"""A TCP proxy in front of an S3 HTTP endpoint that counts requests by S3 operation.

It forwards bytes both ways unchanged (so SigV4 signatures stay valid) and reads the
client-to-server stream as HTTP/1.1 requests (request line, headers, a body by
Content-Length or chunked, several requests per connection) and the server-to-client
stream as responses, only to count: which S3 operations were asked for, how many
carried ``Expect: 100-continue``, and how many *serial round trips* they took.  A
request that starts while no other request is in flight starts a new round trip; a
request that overlaps one already in flight rides along with it.  That is an
approximation, but it is what a user on a slow link waits for.

Addressing is path-style (``/bucket/key``), as the project uses.  Request starts are
taken when the proxy reads them from the client; request ends when the whole final
response has been handed back to the client: the client's view.

``delay`` adds latency, not a bandwidth cap: ``delay`` seconds of round-trip time,
``delay / 2`` on each direction.  Every chunk read is queued with a deliver-at time
and each direction delivers its queue in order when the time comes, so bytes are
never serialised behind a sleep; a ``100-continue`` wait costs a real extra round
trip, as it does on a WAN.  A new connection's first bytes reach the server one
round trip later than they would otherwise (the TCP handshake the client did not
have to wait for on loopback).

Standard library only, so tests and benchmarks can import it without the gateway::

    proxy = await S3CountingProxy("http://127.0.0.1:8333", delay=0.0).start()
    ...  # point the S3 client at proxy.url
    proxy.reset()
    ...  # one FTP command
    await proxy.idle()
    proxy.counts(), proxy.total, proxy.round_trips, proxy.expect_continue
    await proxy.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = ("KINDS", "S3CountingProxy", "classify")

#: The operation kinds counted (anything else is "other").
KINDS = (
    "HeadObject",
    "GetObject",
    "PutObject",
    "CopyObject",
    "ListObjectsV2",
    "ListObjects",
    "ListBuckets",
    "DeleteObject",
    "DeleteObjects",
    "CreateMultipartUpload",
    "UploadPart",
    "UploadPartCopy",
    "CompleteMultipartUpload",
    "AbortMultipartUpload",
    "ListMultipartUploads",
    "HeadBucket",
    "other",
)

READ_CHUNK = 1024 * 1024
#: Stream buffer sizes: large enough that a bulk transfer moves in big steps.
BUFFER = 2 * 1024 * 1024
#: Bytes queued in one direction before the proxy stops reading from that side.
QUEUE_LIMIT = 32 * 1024 * 1024
#: Longest request or response head (start line and headers) accepted.
HEAD_LIMIT = 256 * 1024

#: Object sub-resources that make a GET or PUT something other than Get/PutObject.
_SUBRESOURCES = frozenset({
    "acl", "tagging", "attributes", "retention", "legal-hold", "torrent", "restore",
    "select", "uploadId", "versions", "cors", "policy", "lifecycle", "location",
    "versioning", "website", "notification", "encryption", "replication", "logging",
    "ownershipControls", "publicAccessBlock", "object-lock", "accelerate",
    "requestPayment", "inventory", "analytics", "metrics", "intelligent-tiering",
})

_REQUEST_LINE = re.compile(rb"[A-Z]+ \S+ HTTP/1\.[01]\r?\n")


def classify(method: str, target: str, headers: dict[str, str]) -> str:
    """The S3 operation of one path-style request; ``headers`` keys are lower case."""
    parts = urlsplit(target)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    path = unquote(parts.path or "/")
    bucket, _, key = path.lstrip("/").partition("/")
    method = method.upper()
    copy = "x-amz-copy-source" in headers
    if not bucket:
        return "ListBuckets" if method == "GET" else "other"
    if not key:  # the bucket itself
        if method == "HEAD":
            return "HeadBucket"
        if method == "GET":
            if query.get("list-type") == "2":
                return "ListObjectsV2"
            if "uploads" in query:
                return "ListMultipartUploads"
            if _SUBRESOURCES.intersection(query):
                return "other"  # ACLs, policies, versions, ...
            return "ListObjects"  # version 1
        if method == "POST" and "delete" in query:
            return "DeleteObjects"
        return "other"
    if method == "HEAD":
        return "HeadObject"
    if method == "GET":
        return "other" if _SUBRESOURCES.intersection(query) else "GetObject"
    if method == "PUT":
        if "partNumber" in query and "uploadId" in query:
            return "UploadPartCopy" if copy else "UploadPart"
        if _SUBRESOURCES.intersection(query):
            return "other"
        return "CopyObject" if copy else "PutObject"
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        if "uploadId" in query:
            return "CompleteMultipartUpload"
        return "other"
    if method == "DELETE":
        if "uploadId" in query:
            return "AbortMultipartUpload"
        return "other" if _SUBRESOURCES.intersection(query) else "DeleteObject"
    return "other"


# -- HTTP/1.1 framing, sans I/O ---------------------------------------------------------


class ProtocolError(Exception):
    """The byte stream is not HTTP/1.1 as this proxy understands it."""


def _parse_head(head: bytes) -> tuple[list[str], dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    start = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ProtocolError(f"bad header line {line[:80]!r}")
        name = name.strip().lower()
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return start, headers


@dataclass
class _Request:
    method: str
    target: str
    kind: str
    expect: bool
    #: a final (non-1xx) response head has come back
    answered: bool = False
    #: the server said 100 Continue
    continued: bool = False


class _Body:
    """Consumes one message body: by length, chunked, or until the connection closes."""

    def __init__(self, length: int | None, chunked: bool) -> None:
        self.remaining = length if length is not None else -1
        self.chunked = chunked
        self.state = "size" if chunked else "data"
        self.started = False
        self._line = bytearray()

    @property
    def done(self) -> bool:
        return self.state == "done" or (not self.chunked and self.remaining == 0)

    def feed(self, data: bytes, pos: int) -> int:
        """Consume bytes of this body from ``data[pos:]``; returns the new position."""
        while pos < len(data) and not self.done:
            self.started = True
            if self.state == "data":
                if self.remaining < 0:  # until close
                    return len(data)
                take = min(self.remaining, len(data) - pos)
                self.remaining -= take
                pos += take
                if self.chunked and self.remaining == 0:
                    self.state = "data-end"
                continue
            # a line: a chunk size, the CRLF after a chunk's data, or a trailer
            end = data.find(b"\n", pos)
            if end < 0:
                self._line += data[pos:]
                if len(self._line) > HEAD_LIMIT:
                    raise ProtocolError("chunk line too long")
                return len(data)
            self._line += data[pos : end + 1]
            pos = end + 1
            line = bytes(self._line).strip()
            self._line.clear()
            self._line_done(line)
        return pos

    def _line_done(self, line: bytes) -> None:
        if self.state == "size":
            try:
                size = int(line.split(b";", 1)[0], 16)
            except ValueError:
                raise ProtocolError(f"bad chunk size {line[:40]!r}") from None
            if size == 0:
                self.state = "trailer"
            else:
                self.remaining = size
                self.state = "data"
        elif self.state == "data-end":
            if line:
                raise ProtocolError("no CRLF after a chunk")
            self.state = "size"
        elif self.state == "trailer" and not line:
            self.state = "done"

    def close(self) -> None:
        if not self.chunked and self.remaining < 0:
            self.state = "done"


def _body_of(headers: dict[str, str]) -> _Body | None:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return _Body(None, chunked=True)
    length = headers.get("content-length")
    if length is not None:
        try:
            size = int(length.split(",")[0])
        except ValueError:
            raise ProtocolError(f"bad Content-Length {length!r}") from None
        return _Body(size, chunked=False) if size > 0 else None
    return None


class _HeadReader:
    """Collects bytes up to the blank line that ends a message head."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes, pos: int) -> tuple[bytes | None, int]:
        """(the head without its final CRLFCRLF, or None; the new position)."""
        if not self.buffer:
            end = data.find(b"\r\n\r\n", pos, pos + HEAD_LIMIT)
            if end >= 0:
                return data[pos:end], end + 4
        had = len(self.buffer)
        self.buffer += data[pos : pos + HEAD_LIMIT]
        end = self.buffer.find(b"\r\n\r\n", max(0, had - 3))
        if end < 0:
            if len(self.buffer) >= HEAD_LIMIT:
                raise ProtocolError("message head too long")
            return None, len(data)
        head = bytes(self.buffer[:end])
        self.buffer.clear()
        return head, pos + end + 4 - had

    @property
    def empty(self) -> bool:
        return not self.buffer


class RequestStream:
    """The client-to-server byte stream: calls ``on_request`` for every request head."""

    def __init__(self, on_request: Callable[[_Request], None]) -> None:
        self.on_request = on_request
        self._head = _HeadReader()
        self._body: _Body | None = None
        self._current: _Request | None = None

    def feed(self, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            if self._body is not None:
                if self._body_skipped(data, pos):
                    self._body = None
                    continue
                pos = self._body.feed(data, pos)
                if self._body.done:
                    self._body = None
                continue
            if self._head.empty and data[pos] in b"\r\n":  # CRLFs between messages
                pos += 1
                continue
            head, pos = self._head.feed(data, pos)
            if head is None:
                return
            start, headers = _parse_head(head)
            if len(start) != 3 or not start[2].startswith("HTTP/"):
                raise ProtocolError(f"bad request line {head[:80]!r}")
            method, target = start[0].upper(), start[1]
            request = _Request(
                method, target, classify(method, target, headers),
                expect="100-continue" in headers.get("expect", "").lower(),
            )
            self._current = request
            self._body = _body_of(headers)
            self.on_request(request)

    def _body_skipped(self, data: bytes, pos: int) -> bool:
        """After a final answer to an ``Expect: 100-continue`` request that was not
        told to continue, the client may drop the body and send the next request."""
        request, body = self._current, self._body
        if request is None or body is None or body.started:
            return False
        if not (request.expect and request.answered and not request.continued):
            return False
        return _REQUEST_LINE.match(data, pos, pos + 8192) is not None


class ResponseStream:
    """The server-to-client byte stream, matched in order to the requests sent."""

    def __init__(self, pending: deque[_Request], on_done: Callable[[_Request], None]) -> None:
        self.pending = pending
        self.on_done = on_done
        self._head = _HeadReader()
        self._body: _Body | None = None

    def feed(self, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            if self._body is not None:
                pos = self._body.feed(data, pos)
                if self._body.done:
                    self._body = None
                    self._finish()
                continue
            head, pos = self._head.feed(data, pos)
            if head is None:
                return
            start, headers = _parse_head(head)
            if len(start) < 2 or not start[0].startswith("HTTP/"):
                raise ProtocolError(f"bad status line {head[:80]!r}")
            try:
                status = int(start[1])
            except ValueError:
                raise ProtocolError(f"bad status line {head[:80]!r}") from None
            request = self.pending[0] if self.pending else None
            if 100 <= status < 200:
                if status == 100 and request is not None:
                    request.continued = True
                continue  # an interim response; the final one follows
            if request is not None:
                request.answered = True
            if (request is not None and request.method == "HEAD") or status in (204, 304):
                body = None
            else:
                body = _body_of(headers)
                if body is None and "content-length" not in headers:
                    body = _Body(None, chunked=False)  # until the connection closes
            if body is None:
                self._finish()
            else:
                self._body = body

    def close(self) -> None:
        """The server closed the connection: a body read until close is complete."""
        if self._body is not None:
            self._body.close()
            if self._body.done:
                self._body = None
                self._finish()

    def _finish(self) -> None:
        if self.pending:
            self.on_done(self.pending.popleft())


# -- the proxy ------------------------------------------------------------------------------


@dataclass
class _Direction:
    """One direction of one connection: chunks waiting for their delivery time."""

    queue: deque[tuple[float, bytes]] = field(default_factory=deque)
    queued: int = 0
    #: no chunk is delivered before this loop time (keeps FIFO order; the handshake)
    not_before: float = 0.0
    eof: bool = False
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    space: asyncio.Event = field(default_factory=asyncio.Event)


class _Connection:
    """The HTTP view of one proxied connection: requests sent, responses matched.

    A byte stream the parsers do not understand stops the counting on this connection
    (the bytes still flow) and is recorded in the proxy's ``errors``.
    """

    def __init__(self, proxy: S3CountingProxy) -> None:
        self.proxy = proxy
        self.pending: deque[_Request] = deque()
        self.requests = RequestStream(self._started)
        self.responses = ResponseStream(self.pending, proxy._request_done)
        self.broken = False

    def _started(self, request: _Request) -> None:
        self.pending.append(request)
        self.proxy._request_started(request)

    def sent(self, data: bytes) -> None:
        if not self.broken:
            try:
                self.requests.feed(data)
            except ProtocolError as exc:
                self._break(f"request stream: {exc}")

    def answered(self, data: bytes) -> None:
        if not self.broken:
            try:
                self.responses.feed(data)
            except ProtocolError as exc:
                self._break(f"response stream: {exc}")

    def server_closed(self) -> None:
        if not self.broken:
            self.responses.close()

    def _break(self, why: str) -> None:
        self.broken = True
        self.proxy.errors.append(why)
        self.forget()

    def forget(self) -> None:
        """Requests still unanswered are no longer in flight."""
        while self.pending:
            self.proxy._request_done(self.pending.popleft())


class S3CountingProxy:
    """Counts S3 requests between a client and ``upstream_url``; optional latency."""

    def __init__(self, upstream_url: str, delay: float = 0.0, host: str = "127.0.0.1") -> None:
        parts = urlsplit(upstream_url)
        if parts.scheme not in ("http", ""):
            raise ValueError("only plain http:// endpoints can be proxied")
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        #: round-trip time added, in seconds (half on each direction); may be changed
        #: between measurements
        self.delay = delay
        self.host = host
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._counts: Counter[str] = Counter()
        self._others: list[str] = []
        self._in_flight = 0
        self._queued = 0
        self._activity = 0
        self._changed = asyncio.Event()
        self.round_trips = 0
        self.expect_continue = 0
        self.connections = 0
        #: why counting stopped on a connection or a connection failed, for diagnosis
        self.errors: list[str] = []

    # -- public -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The endpoint URL to give the S3 client."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> S3CountingProxy:
        self._server = await asyncio.start_server(self._accept, self.host, self.port,
                                                  limit=BUFFER)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def reset(self) -> None:
        """Forget what was counted (requests in flight go on; they are not counted)."""
        self._counts.clear()
        self._others.clear()
        self.round_trips = 0
        self.expect_continue = 0
        self.connections = 0

    def counts(self) -> dict[str, int]:
        """Requests per operation kind since the last ``reset()`` (kinds seen only)."""
        return dict(sorted(self._counts.items()))

    @property
    def total(self) -> int:
        """All requests since the last ``reset()``."""
        return sum(self._counts.values())

    @property
    def others(self) -> list[str]:
        """``METHOD target`` of each request counted as "other"."""
        return list(self._others)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def is_idle(self) -> bool:
        """No request awaits its response and no byte awaits delivery."""
        return self._in_flight == 0 and self._queued == 0

    async def idle(self, quiet: float = 0.05, timeout: float = 120.0) -> None:
        """Wait until no request is in flight and no byte is queued, and no new request
        or byte has come for ``quiet`` seconds: requests a server starts in the
        background just after its reply are caught by that window."""
        async with asyncio.timeout(timeout):
            while True:
                while not self.is_idle():
                    self._changed.clear()
                    await self._changed.wait()
                mark = self._activity
                if quiet > 0:
                    await asyncio.sleep(quiet)
                if self.is_idle() and self._activity == mark:
                    return

    async def close(self) -> None:
        """Stop listening and drop every connection (both sides)."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks))
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> S3CountingProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- bookkeeping ----------------------------------------------------------------------

    def _request_started(self, request: _Request) -> None:
        self._activity += 1
        if self._in_flight == 0:
            self.round_trips += 1
        self._in_flight += 1
        self._counts[request.kind] += 1
        if request.kind == "other":
            self._others.append(f"{request.method} {request.target}")
        if request.expect:
            self.expect_continue += 1
        self._changed.set()

    def _request_done(self, request: _Request) -> None:
        self._in_flight -= 1
        self._changed.set()

    # -- connections ----------------------------------------------------------------------

    async def _accept(self, client_reader: asyncio.StreamReader,
                      client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        loop = asyncio.get_running_loop()
        accepted = loop.time()
        self.connections += 1
        connection = _Connection(self)
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(
                    *self.upstream, limit=BUFFER)
            except OSError as exc:
                self.errors.append(f"connect to {self.upstream}: {exc}")
                return
            for writer in (client_writer, upstream_writer):
                writer.transport.set_write_buffer_limits(high=BUFFER)
            # on a WAN the client's first bytes would leave after the handshake's round
            # trip and arrive half a round trip later
            up = _Direction(not_before=accepted + 1.5 * self.delay)
            pumps = [
                asyncio.ensure_future(self._pump(client_reader, upstream_writer, up,
                                                  on_read=connection.sent)),
                asyncio.ensure_future(self._pump(upstream_reader, client_writer, _Direction(),
                                                  on_delivered=connection.answered,
                                                  on_eof=connection.server_closed)),
            ]
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        except asyncio.CancelledError:
            # close(): this task belongs to the proxy's server, and asyncio reports a
            # connection callback that ends cancelled as an error, so it ends normally
            pass
        finally:
            for side in (client_writer, upstream_writer):
                if side is not None:
                    side.transport.abort()
            connection.forget()
            self._changed.set()
            if task is not None:
                self._tasks.discard(task)

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        direction: _Direction,
        on_read: Callable[[bytes], None] | None = None,
        on_delivered: Callable[[bytes], None] | None = None,
        on_eof: Callable[[], None] | None = None,
    ) -> None:
        """Read from one side, deliver to the other after the delay, in order.  Returns
        when the source has closed and all was delivered, or either side failed."""
        reading = asyncio.ensure_future(self._read(reader, direction, on_read))
        try:
            with contextlib.suppress(OSError):
                await self._deliver(writer, direction, on_delivered)
                if on_eof is not None:
                    on_eof()
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading
            self._queued -= direction.queued
            direction.queued = 0
            direction.queue.clear()

    async def _read(self, reader: asyncio.StreamReader, direction: _Direction,
                    on_read: Callable[[bytes], None] | None) -> None:
        loop = asyncio.get_running_loop()
        try:
            while data := await reader.read(READ_CHUNK):
                if on_read is not None:
                    on_read(data)
                at = max(loop.time() + self.delay / 2, direction.not_before)
                direction.not_before = at
                direction.queue.append((at, data))
                direction.queued += len(data)
                self._queued += len(data)
                self._activity += 1
                direction.wakeup.set()
                while direction.queued > QUEUE_LIMIT:
                    direction.space.clear()
                    await direction.space.wait()
        except OSError:
            pass  # a reset: what was read is still delivered, then both sides close
        finally:
            direction.eof = True
            direction.wakeup.set()

    async def _deliver(self, writer: asyncio.StreamWriter, direction: _Direction,
                       on_delivered: Callable[[bytes], None] | None) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not direction.queue:
                if direction.eof:
                    return
                direction.wakeup.clear()
                await direction.wakeup.wait()
                continue
            wait = direction.queue[0][0] - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            now = loop.time()
            batch: list[bytes] = []
            while direction.queue and direction.queue[0][0] <= now:
                batch.append(direction.queue.popleft()[1])
            size = sum(map(len, batch))
            writer.write(batch[0] if len(batch) == 1 else b"".join(batch))
            await writer.drain()
            direction.queued -= size
            self._queued -= size
            direction.space.set()
            if on_delivered is not None:
                for chunk in batch:
                    on_delivered(chunk)
            self._changed.set()
