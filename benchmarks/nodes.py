"""``gateway serve`` nodes and an HAProxy in front of them, for the capacity benchmarks.

A node is a real ``gateway serve -c FILE`` process with a configuration written here;
what the benchmarks read from it is what an operator's monitoring would: RSS, the
kernel's peak RSS (VmHWM), open file descriptors, threads and CPU time, all from
``/proc`` (Linux).  The open-files limit (``ulimit -n``) is set for each child
process with ``resource.setrlimit`` before it starts, so a run does not depend on the
shell it was started from.
"""

from __future__ import annotations

import atexit
import os
import random
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
#: Cheap argon2, as in the tests: what is measured is the server, not the hash.
CHEAP_HASH = {"GATEWAY_ARGON2_TIME_COST": "1", "GATEWAY_ARGON2_MEMORY_COST": "8",
              "GATEWAY_ARGON2_PARALLELISM": "1"}
#: The [users] table of every benchmark node: all clients come from one address, so
#: the per-address and per-login limits on password checks in flight (``ban_after``,
#: ``account_lock_after``) are off, and the hashing queue is long enough for a burst.
USERS_TABLE = "[users]\nhash_queue = 4096\nban_after = 0\naccount_lock_after = 0\n"
_SERVING = re.compile(r"serving FTP on (\S+):(\d+)")


# -- limits ----------------------------------------------------------------------------------
def nofile() -> tuple[int, int]:
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def raise_nofile(wanted: int) -> int:
    """Raise this process's open-files limit to ``wanted`` (the hard limit too when
    running as root); return the soft limit now in force."""
    soft, hard = nofile()
    if wanted <= soft:
        return soft
    if wanted > hard:
        try:  # root with CAP_SYS_RESOURCE may raise the hard limit; a container may not
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
        except (ValueError, OSError):
            pass
    new = min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return new


def _limit_child(limit: int | None):  # noqa: ANN202  (a preexec_fn)
    if limit is None:
        return None

    def apply() -> None:
        raise_nofile(limit)

    return apply


# -- scratch space ---------------------------------------------------------------------------
def work_directory(prefix: str, keep: bool) -> Path:
    """A fresh directory for configs, logs and served files; removed when the process
    exits (a run moves gigabytes) unless ``keep``, in which case its path is printed."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if keep:
        print(f"work directory (kept): {path}", flush=True)
    else:
        atexit.register(shutil.rmtree, path, True)
    return path


# -- ports -----------------------------------------------------------------------------------
def _bindable(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port_range(count: int, hosts: tuple[str, ...] = (HOST,), taken: set[int] | None = None,
                    low: int = 10000, high: int = 32000) -> range:
    """``count`` consecutive ports free on every host, below the ephemeral range
    (32768+) so the clients' own outgoing ports never land in it."""
    taken = taken if taken is not None else set()
    for _ in range(200):
        base = random.randrange(low, high - count)
        ports = range(base, base + count)
        if taken.intersection(ports):
            continue
        if all(_bindable(h, p) for h in hosts for p in ports[:: max(1, count // 50)]) and all(
            _bindable(h, p) for h in hosts for p in ports
        ):
            taken.update(ports)
            return ports
    raise RuntimeError(f"no {count} consecutive free ports on {hosts}")


# -- process figures -------------------------------------------------------------------------
def _status(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def rss(pid: int) -> int:
    return _status(pid, "VmRSS") * 1024


def vm_hwm(pid: int) -> int:
    return _status(pid, "VmHWM") * 1024


def threads(pid: int) -> int:
    return _status(pid, "Threads")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class PeakSampler(threading.Thread):
    """The highest RSS and open descriptors of some processes, sampled every
    ``interval`` seconds."""

    def __init__(self, pids: list[int], interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.interval = interval
        self.peak = dict.fromkeys(pids, 0)
        self.peak_fds = dict.fromkeys(pids, 0)
        self._done = threading.Event()

    def run(self) -> None:
        while True:
            for pid in self.pids:
                try:
                    self.peak[pid] = max(self.peak[pid], rss(pid))
                    self.peak_fds[pid] = max(self.peak_fds[pid], open_fds(pid))
                except OSError:
                    pass
            if self._done.wait(self.interval):
                return

    def __enter__(self) -> PeakSampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self.join()


# -- configuration ---------------------------------------------------------------------------
def cheap_hash(password: str) -> str:
    """An argon2id hash with the cheap parameters the nodes are started with."""
    sys.path.insert(0, str(REPO))
    from gateway.users.database.hashing import HashSettings, PasswordHashing

    return PasswordHashing(HashSettings(1, 8, 1)).hash(password)


def static_user(login: str, password_hash: str, root: str | None = None) -> str:
    lines = ["[[users.static]]", f'login = "{login}"', f'password_hash = "{password_hash}"']
    if root is not None:
        lines.append(f'root = "{root}"')
    return "\n".join(lines) + "\n"


def node_config(*, root: str, users: str, host: str = HOST, log: Path, passive: range | None = None,
                passive_address: str | None = None, balancer: str | None = None,
                storage: str = "", extra: str = "") -> str:
    """A node's TOML: one listener (behind ``balancer`` with PROXY v2 when given), the
    storage root (and ``storage``: more [storage] lines), the accounts (``users``: [[users.static]] entries or a
    [users.database] table) and ``extra`` tables."""
    text = f'[[listeners]]\nhost = "{host}"\nport = 0\n'
    if balancer:
        text += f'proxy_protocol = "v2"\nproxy_trusted = ["{balancer}"]\n'
    text += f'\n[storage]\nroot = "{root}"\n{storage}\n[logging]\nlevel = "info"\nfile = "{log}"\n\n'
    if passive is not None or passive_address is not None:
        text += "[passive]\n"
        if passive is not None:
            text += f'ports = "{passive.start}-{passive.stop - 1}"\n'
        if passive_address is not None:
            text += f'address = "{passive_address}"\n'
        text += "\n"
    return text + extra + "\n" + users


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(CHEAP_HASH)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


class GatewayNode:
    """``gateway serve -c CONFIG`` in its own process, with its own open-files limit."""

    def __init__(self, workdir: Path, name: str, config: str, *, nofile_limit: int | None = None,
                 env: dict[str, str] | None = None, argv: list[str] | None = None) -> None:
        self.name = name
        self.config_path = workdir / f"{name}.toml"
        self.config_path.write_text(config)
        self.output_path = workdir / f"{name}.out"
        command = argv or [sys.executable, "-m", "gateway.cli", "serve", "-c", str(self.config_path)]
        with self.output_path.open("w") as out:
            self.popen = subprocess.Popen(
                command, cwd=workdir, env=env or base_env(), stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, preexec_fn=_limit_child(nofile_limit),
            )
        self.pid = self.popen.pid
        self.host = ""
        self.port = 0

    def wait_ready(self, timeout: float = 60.0) -> GatewayNode:
        deadline = time.monotonic() + timeout
        while True:
            text = self.output_path.read_text(errors="replace")
            found = _SERVING.search(text)
            if found:
                self.host, self.port = found.group(1), int(found.group(2))
                return self
            if self.popen.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not start (exit {self.popen.poll()}):\n{text[-3000:]}")
            time.sleep(0.05)  # polling the node's output for its "serving" line

    def output(self) -> str:
        return self.output_path.read_text(errors="replace")

    def nofile(self) -> tuple[int, int]:
        with open(f"/proc/{self.pid}/limits") as limits:
            for line in limits:
                if line.startswith("Max open files"):
                    parts = line.split()
                    return int(parts[3]), int(parts[4])
        return 0, 0

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)


# -- HAProxy ---------------------------------------------------------------------------------
def haproxy_binary() -> str:
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None)
    if found is None:
        raise RuntimeError("haproxy is not installed (Debian package haproxy)")
    return found


def haproxy_config(listen: tuple[str, int], nodes: list[tuple[str, int]], source: str,
                   maxconn: int = 9000) -> str:
    """TCP round robin over ``nodes`` with send-proxy-v2, connecting from ``source``."""
    lines = [
        "global",
        f"    maxconn {maxconn}",
        "    nbthread 1",
        "defaults",
        "    mode tcp",
        "    timeout connect 10s",
        "    timeout client 300s",
        "    timeout server 300s",
        f"    maxconn {maxconn}",
        "frontend ftp",
        f"    bind {listen[0]}:{listen[1]} backlog 4096",
        "    default_backend nodes",
        "backend nodes",
        "    balance roundrobin",
    ]
    for index, (host, port) in enumerate(nodes, 1):
        lines.append(f"    server node{index} {host}:{port} send-proxy-v2 source {source} "
                     "check inter 2s")
    return "\n".join(lines) + "\n"


class HAProxy:
    def __init__(self, workdir: Path, config: str, port: int, host: str = HOST) -> None:
        binary = haproxy_binary()
        path = workdir / "haproxy.cfg"
        path.write_text(config)
        checked = subprocess.run([binary, "-c", "-f", str(path)], capture_output=True, text=True)
        if checked.returncode != 0:
            raise RuntimeError(checked.stdout + checked.stderr)
        self.log = workdir / "haproxy.log"
        with self.log.open("w") as out:
            self.popen = subprocess.Popen([binary, "-db", "-f", str(path)], stdout=out,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.pid = self.popen.pid
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection((host, port), 1).close()
                return
            except OSError:
                if self.popen.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("haproxy does not listen: " + self.log.read_text()) from None
                time.sleep(0.05)  # polling the port

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
