"""Computing checksums without holding up the event loop.

Hashing is CPU work: SHA-256 runs at one or two GB/s per core, about what a local
upload moves.  Done on the event loop it would halve an upload's speed and stall every
other session meanwhile; hashlib and zlib release the GIL on large buffers, so the
work goes to a small pool of threads of its own (apart from storage's), and the loop
only copies bytes.

* :class:`UploadHasher` hashes an upload as it streams.  The first megabyte is hashed
  on the loop (most uploads are small: no thread, no buffer); beyond it, bytes are
  copied into 1 MiB stages that worker threads hash (one per algorithm, in order)
  while the loop receives the next ones.  An upload holds at most ``STAGE_DEPTH``
  stages, taken from a pool shared by the process (``STAGE_POOL``); when it has none
  free, the feeder waits for the upload's oldest stage: that is the backpressure
  that keeps memory bounded whatever the number of uploads (and with no stage to be
  had at all, a stage-less upload hashes on the loop).  The workers never wait for
  the loop, so a feeder waiting for them always wakes.
* :func:`hash_stream` hashes what storage reads (HASH of a file with no stored
  checksum): large blocks in a thread while the next block is read.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

from gateway.protocol.hashes import (
    ALGORITHMS,
    DEFAULT_UPLOAD_CHECKSUMS,
    Algorithm,
    ByteRange,
    Data,
    Digest,
    algorithm_named,
)

__all__ = (
    "INLINE_BYTES",
    "STAGE_POOL",
    "STAGE_SIZE",
    "Digests",
    "HashTooLarge",
    "StagePool",
    "UploadHasher",
    "hash_executor",
    "hash_stream",
    "upload_algorithms",
)

#: Bytes of an upload hashed on the loop before stages and threads are used.
INLINE_BYTES = 1 << 20
#: One stage: what a worker thread hashes in one go.
STAGE_SIZE = 1 << 20
#: Stages the whole process may hold (32 MiB): a few large uploads hash in threads at
#: once; beyond, they wait their turn, as the CPU could not do more anyway.
STAGE_COUNT = 32
#: Stages one upload may have in the workers' hands at once.
STAGE_DEPTH = 4
#: Blocks at least this large are hashed in a thread (below, a thread costs more).
THREAD_MIN = 256 * 1024
#: Bytes read from storage per block when hashing a stored file.
READ_BLOCK = 1 << 20

_executor: concurrent.futures.ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def hash_executor() -> concurrent.futures.ThreadPoolExecutor:
    """The process's hashing threads: one per CPU, created on first use."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=max(1, os.cpu_count() or 1), thread_name_prefix="gateway-hash"
            )
        return _executor


class Digests:
    """The running digests of one stream, by algorithm key."""

    __slots__ = ("_digests",)

    def __init__(self, algorithms: Iterable[Algorithm]) -> None:
        self._digests: dict[str, Digest] = {a.key: a.new() for a in algorithms}

    def __bool__(self) -> bool:
        return bool(self._digests)

    def update(self, data: Data) -> None:
        for digest in self._digests.values():
            digest.update(data)

    def digests(self) -> list[Digest]:
        return list(self._digests.values())

    def values(self) -> dict[str, str]:
        """Algorithm key -> lowercase hex digest of everything so far."""
        return {key: digest.hexdigest() for key, digest in self._digests.items()}


class StagePool:
    """Stage buffers shared by every upload of the process, at most ``count`` of them.
    Thread-safe: a stage comes back when its worker is done with it."""

    def __init__(self, count: int = STAGE_COUNT, size: int = STAGE_SIZE) -> None:
        self.size = size
        self._left = count
        self._free: list[bytearray] = []
        self._lock = threading.Lock()

    def take(self) -> bytearray | None:
        with self._lock:
            if self._free:
                return self._free.pop()
            if self._left <= 0:
                return None
            self._left -= 1
        return bytearray(self.size)

    def give(self, stage: bytearray) -> None:
        with self._lock:
            self._free.append(stage)


STAGE_POOL = StagePool()


class _Stage:
    """A full stage on its way through the digests' workers; ``done`` when all have
    hashed it (and its buffer may be refilled)."""

    __slots__ = ("buffer", "count", "_left", "_lock", "done")

    def __init__(self, buffer: bytearray, workers: int) -> None:
        self.buffer = buffer
        self.count = 0
        self._left = workers
        self._lock = threading.Lock()
        self.done: concurrent.futures.Future[None] = concurrent.futures.Future()

    def hashed(self) -> None:
        """One worker is done with it (called from that worker's thread)."""
        with self._lock:
            self._left -= 1
            last = self._left == 0
        if last and not self.done.done():
            try:
                self.done.set_result(None)
            except concurrent.futures.InvalidStateError:
                pass  # cancelled meanwhile: nobody waits for it any more


class _Worker:
    """One digest of one upload, fed its stages in order by a queue a thread drains:
    each digest runs in its own thread, so SHA-256 and CRC-32 hash a stage at once."""

    __slots__ = ("digest", "_queue", "_running", "_lock", "_executor", "cancelled")

    def __init__(self, digest: Digest, executor: concurrent.futures.Executor) -> None:
        self.digest = digest
        self._queue: deque[_Stage] = deque()
        self._running = False
        self._lock = threading.Lock()
        self._executor = executor
        self.cancelled = False

    def push(self, stage: _Stage) -> None:
        with self._lock:
            self._queue.append(stage)
            if self._running:
                return
            self._running = True
        self._executor.submit(self._drain)

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._running = False
                    return
                stage = self._queue.popleft()
            try:
                if not self.cancelled:
                    self.digest.update(memoryview(stage.buffer)[: stage.count])
            finally:
                stage.hashed()


class UploadHasher:
    """The checksums of an upload, fed the bytes in order as they are written.

    ``feed`` is synchronous (for storage written from the receive callback), ``afeed``
    its coroutine twin (it waits without blocking the loop); the bytes given to either
    may be a view of a buffer reused right after the call.  ``result`` finishes the
    job; ``close`` gives the stages back (always call it).

    Up to ``depth`` stages of one upload are in the workers' hands at once, so the
    network and the hashing each go at their own pace; when all are taken (the
    hashing is slower than the network, or the process's stages are all in use) the
    feeder waits for the oldest.
    """

    def __init__(
        self,
        algorithms: Iterable[Algorithm],
        *,
        pool: StagePool | None = None,
        executor: concurrent.futures.Executor | None = None,
        depth: int = STAGE_DEPTH,
    ) -> None:
        self._digests = Digests(algorithms)
        self._pool = STAGE_POOL if pool is None else pool
        self._executor = executor
        self._depth = depth
        self.size = 0
        self._workers: list[_Worker] | None = None  # made with the first stage
        self._fill: _Stage | None = None
        self._owned = 0  # stages taken from the pool
        self._free: list[bytearray] = []
        self._inflight: deque[_Stage] = deque()
        self._closed = False

    # -- feeding ------------------------------------------------------------------------
    def feed(self, data: Data) -> None:
        """Hash ``data`` next, waiting (on this thread) only for this upload's oldest
        stage when all its stages are taken: that wait is the backpressure."""
        for done in self._steps(data):
            done.result()

    async def afeed(self, data: Data) -> None:
        """``feed`` for coroutines: waits without blocking the loop."""
        for done in self._steps(data):
            # shielded: a cancelled upload must not cancel the stage, whose buffer
            # goes back to the pool only when its workers are really done with it
            await asyncio.shield(asyncio.wrap_future(done))

    def _steps(self, data: Data) -> Iterator[concurrent.futures.Future[None]]:
        """Feed ``data``; yields a stage's ``done`` whenever it must be waited for
        before going on."""
        view = memoryview(data).cast("B")
        self.size += len(view)
        while view:
            fill = self._fill
            if fill is None:
                self._reclaim()
                if not self._inflight and self.size <= INLINE_BYTES:
                    self._digests.update(view)  # a small upload: no stage, no thread
                    return
                buffer = self._take_buffer()
                if buffer is None:
                    if not self._inflight:
                        self._digests.update(view)  # the process's stages are all taken
                        return
                    yield self._inflight[0].done
                    continue
                fill = self._fill = _Stage(buffer, len(self._workers_()))
            buffer = fill.buffer
            piece = view[: len(buffer) - fill.count]
            buffer[fill.count : fill.count + len(piece)] = piece
            fill.count += len(piece)
            view = view[len(piece):]
            if fill.count == len(buffer):
                self._submit()

    def _workers_(self) -> list[_Worker]:
        if self._workers is None:
            executor = self._executor or hash_executor()
            self._workers = [_Worker(digest, executor) for digest in self._digests.digests()]
        return self._workers

    def _reclaim(self) -> None:
        inflight = self._inflight
        while inflight and inflight[0].done.done():
            self._free.append(inflight.popleft().buffer)

    def _take_buffer(self) -> bytearray | None:
        if self._free:
            return self._free.pop()
        if self._owned >= self._depth:
            return None
        buffer = self._pool.take()
        if buffer is not None:
            self._owned += 1
        return buffer

    def _submit(self) -> None:
        stage, self._fill = self._fill, None
        assert stage is not None
        self._inflight.append(stage)
        for worker in self._workers_():
            worker.push(stage)

    # -- the end ------------------------------------------------------------------------
    async def result(self) -> dict[str, str]:
        """Algorithm key -> hex digest of every byte fed."""
        fill = self._fill
        if fill is not None and fill.count >= THREAD_MIN:
            self._submit()
        elif fill is not None:
            self._fill = None
            self._free.append(fill.buffer)
        if self._inflight:
            # workers go in order: the last stage done, all are
            await asyncio.shield(asyncio.wrap_future(self._inflight[-1].done))
            self._reclaim()
        if fill is not None and fill.count < THREAD_MIN:
            self._digests.update(memoryview(fill.buffer)[: fill.count])
        return self._digests.values()

    def close(self) -> None:
        """Give the stages back (those still being hashed when their worker is done)."""
        if self._closed:
            return
        self._closed = True
        for worker in self._workers or ():
            worker.cancelled = True  # stages still queued are skipped, not hashed
        pool = self._pool
        if self._fill is not None:
            self._free.append(self._fill.buffer)
            self._fill = None
        for buffer in self._free:
            pool.give(buffer)
        self._free.clear()
        for stage in self._inflight:
            stage.done.add_done_callback(functools.partial(_give_back, pool, stage.buffer))
        self._inflight.clear()


def _give_back(pool: StagePool, buffer: bytearray, _done: object) -> None:
    pool.give(buffer)


class HashTooLarge(Exception):
    """More bytes than the server's limit would have to be read."""


async def hash_stream(
    read: Callable[[int], Awaitable[bytes]],
    digests: Digests,
    byte_range: ByteRange,
    *,
    limit: int | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> int:
    """Hash what ``read`` returns (from the range's start, which the caller has
    sought) until the range or the stream ends; the number of bytes hashed.

    Memory: two blocks (the one being hashed in a thread, the one being read).
    Cancelling it stops the reading at once; a block a thread is hashing finishes
    there, unseen.  :class:`HashTooLarge` once more than ``limit`` bytes would be read.
    """
    loop = asyncio.get_running_loop()
    pool = executor or hash_executor()
    remaining = byte_range.count
    done = 0
    pending: asyncio.Future[Any] | None = None
    try:
        while remaining is None or remaining > 0:
            want = READ_BLOCK if remaining is None else min(READ_BLOCK, remaining)
            block = await read(want)
            if not block:
                break
            if limit is not None and done + len(block) > limit:
                raise HashTooLarge(f"more than {limit} bytes")
            if pending is not None:
                await pending
                pending = None
            if len(block) >= THREAD_MIN:
                pending = loop.run_in_executor(pool, digests.update, block)
            else:
                digests.update(block)
            done += len(block)
            if remaining is not None:
                remaining -= len(block)
        if pending is not None:
            await pending
            pending = None
    finally:
        if pending is not None:
            pending.cancel()  # unseen; a running thread finishes its block
    return done


def upload_algorithms(setting: bool | str | Iterable[str] | None) -> tuple[Algorithm, ...]:
    """The algorithms for ``Server(upload_checksums=...)``: True for the default set,
    False/None/empty for none, or names (``"sha256"``, ``"SHA-256"``, ``"md5"``...)."""
    if setting is True:
        setting = DEFAULT_UPLOAD_CHECKSUMS
    if not setting:
        return ()
    names = [setting] if isinstance(setting, str) else list(setting)
    chosen: list[Algorithm] = []
    for name in names:
        algorithm = algorithm_named(str(name))
        if algorithm is None:
            known = ", ".join(a.key for a in ALGORITHMS)
            raise ValueError(f"unknown checksum algorithm {name!r}; expected some of {known}")
        if algorithm not in chosen:
            chosen.append(algorithm)
    return tuple(chosen)
