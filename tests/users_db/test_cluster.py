"""Two gateway processes sharing one database: a user's connection limit holds across
both, and the slots of a node that dies are released after the stale timeout."""

from __future__ import annotations

import ftplib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.users_db.conftest import REPO, add_account, eventually, ftp_login, in_thread, login_error


@pytest.fixture
def start_node() -> Iterator[Callable[[str], tuple[subprocess.Popen[str], int]]]:
    nodes: list[subprocess.Popen[str]] = []

    def start(url: str) -> tuple[subprocess.Popen[str], int]:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.users_db.serve_db", url],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        nodes.append(process)
        assert process.stdout is not None
        line = process.stdout.readline()  # blocks until the node listens (or dies)
        assert line.startswith("PORT "), f"node did not start: {line!r}"
        return process, int(line.split()[1])

    yield start
    for process in nodes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def test_maximum_connections_across_two_processes(
    database_url: str, root: Path, start_node
) -> None:
    await add_account(database_url, "alice", "s3cret", root=root, maximum_connections=1)
    node_a, port_a = await in_thread(start_node, database_url)
    _, port_b = await in_thread(start_node, database_url)

    held = await in_thread(ftp_login, port_a, "alice", "s3cret")
    error = await in_thread(login_error, port_b, "alice", "s3cret")
    assert error.startswith("530") and "too many connections" in error
    await in_thread(held.quit)

    async def logs_in_on(port: int) -> bool:
        try:
            ftp = await in_thread(ftp_login, port, "alice", "s3cret")
        except ftplib.error_perm:
            return False
        await in_thread(ftp.quit)
        return True

    await eventually(lambda: logs_in_on(port_b))

    # node A dies holding alice's only slot: B refuses until A's rows go stale.
    # (B gives its slot back as its session closes, just after the 221: wait for it)
    sessions: list[ftplib.FTP] = []

    async def holds_on(port: int) -> bool:
        try:
            sessions.append(await in_thread(ftp_login, port, "alice", "s3cret"))
        except ftplib.error_perm:
            return False
        return True

    await eventually(lambda: holds_on(port_a))
    held = sessions[0]
    node_a.send_signal(signal.SIGKILL)
    node_a.wait(10)
    died = time.monotonic()
    assert (await in_thread(login_error, port_b, "alice", "s3cret")).startswith("530")
    await eventually(lambda: logs_in_on(port_b), timeout=15)
    assert time.monotonic() - died >= 0.5  # released by the timeout, not at once
    held.close()
