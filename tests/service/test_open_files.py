"""Open files: ``gateway serve`` raises its soft limit to the hard one, says when it is
still low, and warns when the descriptors in use come near it."""

from __future__ import annotations

import logging
import os
import resource
import socket
from pathlib import Path

import pytest

from gateway.service import openfiles

from .conftest import GATEWAY, HOST

CONFIG = f"""
[[listeners]]
host = "{HOST}"
port = 0

[[users.static]]
login = "anonymous"
permissions = ["/:rw"]
"""


def _greetings(port: int, count: int) -> int:
    """Open ``count`` control connections at once; how many were greeted."""
    sockets = []
    greeted = 0
    try:
        for _ in range(count):
            sock = socket.create_connection((HOST, port), timeout=20)
            sockets.append(sock)
        for sock in sockets:
            if sock.recv(64).startswith(b"220"):
                greeted += 1
    finally:
        for sock in sockets:
            sock.close()
    return greeted


def test_a_low_soft_limit_is_raised_to_the_hard_one(tmp_path: Path, start_gateway) -> None:
    """Started with ``ulimit -Sn 256`` (hard 4096), 400 clients are all greeted."""
    (tmp_path / "gateway.toml").write_text(CONFIG)
    argv = ["prlimit", "--nofile=256:4096", *GATEWAY, "serve", "-c", "gateway.toml"]
    server = start_gateway(argv=argv)
    server.wait_for("open files: soft limit raised from 256 to 4096")
    assert _greetings(server.port, 400) == 400


def test_a_limit_that_stays_low_is_said_at_start(tmp_path: Path, start_gateway) -> None:
    (tmp_path / "gateway.toml").write_text(CONFIG)
    argv = ["prlimit", "--nofile=512:512", *GATEWAY, "serve", "-c", "gateway.toml"]
    server = start_gateway(argv=argv)
    line = server.wait_for(r"open files limit is 512: about \d+ sessions at most").string
    assert "LimitNOFILE" in line and "raised" not in server.output


def test_the_watch_warns_near_the_limit_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    pipes = [os.pipe() for _ in range(20)]  # enough in use that +2 is within 10 %
    try:
        used = openfiles.open_files_in_use()
        assert used is not None and used >= 40
        watch = openfiles.OpenFilesWatch()
        with caplog.at_level(logging.WARNING, logger="gateway.service"):
            assert not watch.check(0.0)  # far from the limit
            resource.setrlimit(resource.RLIMIT_NOFILE, (used + 2, hard))
            try:
                assert watch.check(100.0)
                assert not watch.check(130.0)  # said within the minute already
                assert watch.check(161.0)
            finally:
                resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    finally:
        for read, write in pipes:
            os.close(read)
            os.close(write)
    warnings = [r.getMessage() for r in caplog.records if "open files:" in r.getMessage()]
    assert len(warnings) == 2 and f"of {used + 2} in use" in warnings[0]

