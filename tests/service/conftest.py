"""``gateway serve`` as a real process: started, waited for, signalled, checked."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.s3.conftest import s3_options, s3_prefix  # noqa: F401  (fixtures for S3 tests)

HOST = "127.0.0.1"
GATEWAY = [sys.executable, "-m", "gateway.cli"]
#: Cheap argon2 for tests only; the defaults stay strong.
CHEAP_HASH = {"GATEWAY_ARGON2_TIME_COST": "1", "GATEWAY_ARGON2_MEMORY_COST": "8",
              "GATEWAY_ARGON2_PARALLELISM": "1"}
_SERVING = re.compile(r"serving FTP on (\S+):(\d+) \((.*)\)")
_METRICS = re.compile(r"metrics on http://(\S+):(\d+)/metrics")


def base_env(**extra: str) -> dict[str, str]:
    env = {k: val for k, val in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(CHEAP_HASH)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_cli(*args: str, cwd: Path, stdin: str | None = None, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GATEWAY, *args], cwd=cwd, input=stdin, capture_output=True, text=True,
        env=env or base_env(), timeout=timeout,
    )


class GatewayProcess:
    """``gateway serve`` in a subprocess; stderr is collected line by line."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.popen = subprocess.Popen(
            argv, cwd=cwd, env=env, text=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.ports: list[int] = []
        self.metrics_port: int | None = None

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str | re.Pattern[str], timeout: float = 30.0,
                 count: int = 1) -> re.Match[str]:
        """The ``count``-th output line matching ``pattern``; fails with the output so far."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [m for m in map(regex.search, self.lines) if m]
                if len(found) >= count:
                    return found[count - 1]
                remaining = deadline - time.monotonic()
                finished = self.popen.poll() is not None and not self._reader.is_alive()
                if remaining <= 0 or finished:
                    raise AssertionError(
                        f"no line matching {regex.pattern!r}; exit {self.popen.poll()}; output:\n"
                        + "\n".join(self.lines)
                    )
                self._changed.wait(min(remaining, 0.5))

    def wait_ready(self, listeners: int = 1) -> list[int]:
        """Wait for ``listeners`` "serving" lines; their ports, in order."""
        self.ports = [int(self.wait_for(_SERVING, count=n).group(2)) for n in range(1, listeners + 1)]
        return self.ports

    @property
    def port(self) -> int:
        return self.ports[0]

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.popen.send_signal(signum)

    def wait_exit(self, timeout: float = 60.0) -> int:
        code = self.popen.wait(timeout)
        self._reader.join(5)
        return code

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator:
    started: list[GatewayProcess] = []

    def start(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
              listeners: int = 1, argv: list[str] | None = None) -> GatewayProcess:
        """``gateway serve ARGS`` (or ``argv``) in ``cwd``, once it says it is serving."""
        command = argv if argv is not None else [*GATEWAY, "serve", *args]
        process = GatewayProcess(command, cwd or tmp_path, env or base_env())
        started.append(process)
        process.wait_ready(listeners)
        return process

    yield start
    for process in started:
        process.stop()


METRICS_PATTERN = _METRICS
