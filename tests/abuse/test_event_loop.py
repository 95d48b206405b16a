"""One abusive session must not stall the others: a normal session's NOOP is answered
promptly while another client pipelines confinement checks on a very deep path."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from tests.server.conftest import STEP, RawClient

#: deep enough that resolving it inline stalls the loop for seconds over a burst,
#: shallow enough for pytest's recursive clean-up of tmp_path
DEPTH = 400
#: the promise: a NOOP round trip of the quiet session takes no longer than this
#: (one pause of the whole process, a garbage collection or the machine, is allowed)
NOOP_BOUND = 0.1


def _assert_answered_promptly(rtts: list[float]) -> None:
    """The quiet session was answered all along: many times, and over the bound at
    most once (a stalled loop makes every NOOP during the stall wait)."""
    assert len(rtts) >= 10, rtts
    slow = sorted(rtt for rtt in rtts if rtt >= NOOP_BOUND)
    assert len(slow) <= 1, f"{len(slow)} NOOPs over {NOOP_BOUND * 1000:.0f} ms: {slow}"


def _deep_tree(root: Path, depth: int) -> None:
    """``root/d/d/.../d``, made with directory descriptors (the path is too long for
    one system call)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
    finally:
        os.close(fd)


async def _probe(client: RawClient, stop: asyncio.Event) -> list[float]:
    rtts = []
    while not stop.is_set():
        started = time.perf_counter()
        await client.expect("NOOP", "200")
        rtts.append(time.perf_counter() - started)
    return rtts


async def test_deep_path_burst_does_not_stall_other_sessions(make_server, root: Path) -> None:
    await asyncio.to_thread(_deep_tree, root, DEPTH)
    server = await make_server()
    abuser = await RawClient.connect(server.server_port)
    await abuser.login()
    for _ in range(DEPTH // 200):  # CWD in steps: a command line has a length limit
        await abuser.expect("CWD " + "/".join(["d"] * 200), "250")
    quiet = await RawClient.connect(server.server_port)
    await quiet.login()
    stop = asyncio.Event()
    probe = asyncio.create_task(_probe(quiet, stop))
    burst = 100
    await abuser.send(b"MLST .\r\n" * burst)  # pipelined: read without waiting
    async with asyncio.timeout(STEP * 6):
        for _ in range(burst):
            assert (await abuser.reply()).code == "250"
    stop.set()
    rtts = await probe
    _assert_answered_promptly(rtts)  # the quiet session kept being answered meanwhile
    await abuser.close()
    await quiet.close()


async def test_stat_of_a_huge_directory_streams_beside_other_sessions(make_server, root: Path) -> None:
    """STAT of a directory is written as it is read, in bounded batches, and other
    sessions are answered meanwhile."""
    big = root / "big"
    big.mkdir()

    def fill() -> None:
        for index in range(20_000):
            (big / f"file-{index:05d}.dat").touch()

    await asyncio.to_thread(fill)
    server = await make_server()
    lister = await RawClient.connect(server.server_port)
    await lister.login()
    quiet = await RawClient.connect(server.server_port)
    await quiet.login()
    stop = asyncio.Event()
    probe = asyncio.create_task(_probe(quiet, stop))
    async with asyncio.timeout(STEP * 3):
        reply = await lister.cmd("STAT big")
    stop.set()
    rtts = await probe
    assert reply.code == "212"
    entries = [line for line in reply.lines if "file-" in line]
    assert len(entries) == 20_000
    _assert_answered_promptly(rtts)
    await lister.close()
    await quiet.close()
