"""Independent FTP clients against ``python -m gateway`` started as a user would.

Every server here is a real subprocess (``sys.executable -m gateway ...``) on a
free loopback port, ready once it answers ``220`` on a fresh connection (the
greeting is polled, never slept on).  Teardown terminates it and checks it exits.

Clients (ftplib, curl, lftp, wget) are independent implementations of the
protocol; a missing one is installed by ``scripts/install-test-deps.sh`` on first
need, and fails the test that needs it (never skips) when it cannot be installed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

USER, PASSWORD = "user", "s3cret"
HOST = "127.0.0.1"
MIB = 1024 * 1024
BIG_SIZE = 100 * MIB
#: Seconds a freshly started server has to answer its greeting.
STARTUP_TIMEOUT = 20.0
#: Seconds one external client command may take (a 100 MiB TLS transfer included).
CLIENT_TIMEOUT = 110.0
REPO = Path(__file__).resolve().parents[2]


# -- helpers ------------------------------------------------------------------------------


def sha256_file(path: Path, *, offset: int = 0) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        file.seek(offset)
        while chunk := file.read(4 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


_install_attempt: list[subprocess.CompletedProcess[str]] = []


def require_tool(name: str) -> str:
    """The path of an external client, installed on first need; fail (never skip)
    when it cannot be had.

    A fresh machine often lacks lftp: the first missing tool runs
    ``scripts/install-test-deps.sh`` once per test session (it installs lftp, curl
    and wget where missing, and needs root); a tool still missing after that fails
    the test with what the script said.
    """
    path = shutil.which(name)
    if path is None:
        if not _install_attempt:
            _install_attempt.append(subprocess.run(
                ["bash", str(REPO / "scripts" / "install-test-deps.sh")],
                capture_output=True, text=True, timeout=900,
            ))
        path = shutil.which(name)
    if path is None:
        said = _install_attempt[0].stderr[-2000:]
        pytest.fail(
            f"{name} is not installed and scripts/install-test-deps.sh could not install it "
            f"(run it as root):\n{said}",
            pytrace=False,
        )
    return path


def run(argv: list[str], *, cwd: Path | None = None, check: bool = True,
        timeout: float = CLIENT_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run an external client; on an unexpected exit show what it said."""
    env = dict(os.environ, LC_ALL="C", HOME=str(cwd or Path.cwd()))
    proc = subprocess.run(
        argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
        text=True, errors="replace", timeout=timeout,
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f"{' '.join(argv)!s} exited {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}",
            pytrace=False,
        )
    return proc


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def tree_digest(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root`` (directories as "dir")."""
    result = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        result[rel] = "dir" if path.is_dir() else sha256_file(path)
    return result


def make_tree(root: Path, *, files: int = 30, seed: int = 7) -> dict[str, str]:
    """A 3-level tree of ``files`` files of varied sizes (0 B to ~300 KiB)."""
    import random

    rng = random.Random(seed)
    dirs = [root / "a", root / "a" / "b", root / "a" / "b" / "c", root / "d", root / "d" / "e" / "f"]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        size = rng.choice([0, 1, 17, 4096, 65537, rng.randrange(1, 300_000)])
        target = dirs[i % len(dirs)] if i % 6 else root
        (target / f"file-{i:02d}.bin").write_bytes(rng.randbytes(size))
    return tree_digest(root)


# -- the big random file, once per session --------------------------------------------------


@dataclass(frozen=True)
class BigFile:
    path: Path
    size: int
    sha256: str

    def tail_sha256(self, offset: int) -> str:
        return sha256_file(self.path, offset=offset)


@pytest.fixture(scope="session")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> BigFile:
    """100 MiB of random bytes (os.urandom in 1 MiB chunks) and its sha256."""
    path = tmp_path_factory.mktemp("big") / "random-100MiB.bin"
    digest = hashlib.sha256()
    with open(path, "wb") as file:
        for _ in range(BIG_SIZE // MIB):
            chunk = os.urandom(MIB)
            digest.update(chunk)
            file.write(chunk)
    return BigFile(path, BIG_SIZE, digest.hexdigest())


# -- certificates ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path

    def client_context(self, *, minimum: ssl.TLSVersion | None = None,
                       maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        context.load_verify_locations(cafile=str(self.ca))
        if minimum is not None:
            context.minimum_version = minimum
        if maximum is not None:
            context.maximum_version = maximum
        return context


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A trustme CA and a server certificate for 127.0.0.1/localhost, as PEM files."""
    import trustme

    directory = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    server_cert = ca.issue_cert(HOST, "localhost")
    files = TlsFiles(directory / "ca.pem", directory / "server-cert.pem", directory / "server-key.pem")
    ca.cert_pem.write_to_path(str(files.ca))
    server_cert.private_key_pem.write_to_path(str(files.key))
    with open(files.cert, "wb") as out:  # leaf first, then the chain
        for blob in server_cert.cert_chain_pems:
            out.write(blob.bytes())
    return files


# -- the server subprocess ----------------------------------------------------------------


@dataclass
class GatewayProcess:
    """One ``python -m gateway`` subprocess and what a client needs to reach it."""

    argv: list[str]
    port: int
    root: Path | None
    log: Path
    implicit_tls: bool
    tls: TlsFiles | None
    process: subprocess.Popen[bytes] | None = None
    user: str = USER
    password: str = PASSWORD
    host: str = HOST

    def url(self, path: str = "/", scheme: str = "ftp", *, credentials: bool = True) -> str:
        auth = f"{self.user}:{self.password}@" if credentials else ""
        return f"{scheme}://{auth}{self.host}:{self.port}{path}"

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def start(self) -> None:
        self._log_file = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            self.argv, cwd=self.root or self.log.parent, stdin=subprocess.DEVNULL,
            stdout=self._log_file, stderr=subprocess.STDOUT,
        )
        self.wait_ready()

    def wait_ready(self) -> None:
        """Poll until a fresh connection gets a ``220`` greeting (no fixed sleep)."""
        assert self.process is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        last_error: Exception | None = None
        delay = 0.005
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.process.returncode} before answering\n{self.log_text()}"
                )
            try:
                if self.greeting().startswith("220"):
                    return
            except (OSError, ssl.SSLError) as exc:
                last_error = exc
            time.sleep(delay)  # poll interval between connection attempts
            delay = min(delay * 2, 0.1)
        raise RuntimeError(f"server not ready after {STARTUP_TIMEOUT}s: {last_error}\n{self.log_text()}")

    def greeting(self) -> str:
        """The first reply line on a new control connection (through TLS if implicit)."""
        with socket.create_connection((self.host, self.port), timeout=2) as raw:
            sock: socket.socket = raw
            if self.implicit_tls:
                assert self.tls is not None
                sock = self.tls.client_context().wrap_socket(raw, server_hostname=self.host)
            try:
                data = b""
                while b"\r\n" not in data:
                    chunk = sock.recv(1024)
                    if not chunk:
                        break
                    data += chunk
                with_quit = data.startswith(b"220")
                if with_quit:
                    sock.sendall(b"QUIT\r\n")
                return data.decode("utf-8", "replace")
            finally:
                if sock is not raw:
                    sock.close()

    def stop(self) -> int:
        """Terminate and wait; the return code (a SIGTERM death counts as a clean stop)."""
        assert self.process is not None
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=10)
                    raise AssertionError(
                        f"server ignored SIGTERM for 10s\n{self.log_text()[-4000:]}"
                    ) from None
            return self.process.returncode
        finally:
            self._log_file.close()


ServerFactory = Callable[..., GatewayProcess]


@pytest.fixture
def gateway_server(tmp_path: Path, tls_files: TlsFiles) -> Iterator[ServerFactory]:
    """Start ``python -m gateway`` subprocesses; each is stopped (and checked) at teardown.

    ``gateway_server(tls=True, implicit_tls=False, require_tls=False, memory=False,
    extra_args=())`` returns a running ``GatewayProcess`` serving ``tmp_path/"served"``.
    """
    started: list[GatewayProcess] = []

    def start(*, tls: bool = False, implicit_tls: bool = False, require_tls: bool = False,
              memory: bool = False, extra_args: tuple[str, ...] = ()) -> GatewayProcess:
        index = len(started)
        root = tmp_path / ("served" if index == 0 else f"served-{index}")
        root.mkdir(exist_ok=True)
        for attempt in range(3):  # the free port could be taken between probe and bind
            port = free_port()
            argv = [sys.executable, "-m", "gateway", "--user", USER, "--pass", PASSWORD,
                    "--host", HOST, "--port", str(port), "--family", "ipv4"]
            argv += ["--memory"] if memory else ["-d", str(root)]
            if tls or implicit_tls or require_tls:
                argv += ["--tls-cert", str(tls_files.cert), "--tls-key", str(tls_files.key)]
            if implicit_tls:
                argv.append("--implicit-tls")
            if require_tls:
                argv.append("--require-tls")
            argv += list(extra_args)
            server = GatewayProcess(
                argv=argv, port=port, root=root, log=tmp_path / f"gateway-{index}-{attempt}.log",
                implicit_tls=implicit_tls, tls=tls_files,
            )
            started.append(server)
            try:
                server.start()
            except RuntimeError:
                server.stop()
                started.remove(server)
                if attempt == 2 or "Address already in use" not in server.log_text():
                    raise
                continue
            return server
        raise AssertionError("unreachable")

    yield start

    problems = []
    for server in started:
        if server.process is None:
            continue
        code = server.stop()
        # shown by pytest only when the test failed
        print(f"--- {' '.join(server.argv[1:])} (exit {code}) ---\n{server.log_text()[-8000:]}")
        if code not in (0, -signal.SIGTERM):
            problems.append(f"server on port {server.port} exited with {code}\n{server.log_text()[-4000:]}")
        elif "Traceback" in server.log_text():
            problems.append(f"server on port {server.port} logged a traceback\n{server.log_text()[-6000:]}")
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
