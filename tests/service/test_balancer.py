"""``gateway serve`` nodes behind a real HAProxy speaking the PROXY protocol v2.

Everything runs on loopback, each party on its own address so that the addresses
in the logs say who is who:

* the client connects from 127.0.0.5 (and a stranger from 127.0.0.6) to HAProxy
  on 127.0.0.1;
* HAProxy connects to the nodes from 127.0.0.9, the only trusted balancer, with
  ``send-proxy-v2`` (and PROXY v2 LOCAL health checks);
* the nodes listen on 127.0.0.11, .12, .13 and share one storage root.

The two deployments of the README: each node's passive port range forwarded by the
balancer to that node (the balancer's address announced, every data connection
through the balancer with its own header), and passive ports reached directly
(each node announcing its own address).

HAProxy comes from the distribution (scripts/install-test-deps.sh installs it); a
missing HAProxy fails these tests, it does not skip them.
"""

from __future__ import annotations

import ftplib
import io
import os
import random
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .conftest import run_cli

BALANCER = "127.0.0.1"  # what clients connect to
BALANCER_SOURCE = "127.0.0.9"  # where the balancer connects to the nodes from
CLIENT = "127.0.0.5"
STRANGER = "127.0.0.6"
NODES = ("127.0.0.11", "127.0.0.12", "127.0.0.13")
PASSIVE_PORTS = 4  # per node
TIMEOUT = 30


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None)
    if found is None:
        pytest.fail("haproxy is not installed: run scripts/install-test-deps.sh (Debian package haproxy)")
    return found


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_ports(hosts: tuple[str, ...], count: int, taken: set[int]) -> range:
    """``count`` consecutive ports free on every host (and not already handed out)."""
    for _ in range(500):
        base = random.randrange(20000, 60000 - count)
        ports = range(base, base + count)
        if not taken.intersection(ports) and all(_bindable(h, p) for h in hosts for p in ports):
            taken.update(ports)
            return ports
    raise AssertionError("no free port range on loopback")


class HAProxy:
    """haproxy in the foreground, from a configuration written by the test."""

    def __init__(self, binary: str, config: Path, log: Path) -> None:
        checked = subprocess.run([binary, "-c", "-f", str(config)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        self.log = log
        with log.open("w") as out:
            self.popen = subprocess.Popen([binary, "-db", "-f", str(config)], stdout=out,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def wait_listening(self, port: int) -> None:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            assert self.popen.poll() is None, self.log.read_text()
            try:
                socket.create_connection((BALANCER, port), 1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("haproxy does not listen: " + self.log.read_text())

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)


@pytest.fixture
def start_haproxy(tmp_path: Path) -> Iterator[Callable[[str], HAProxy]]:
    binary = haproxy_binary()
    started: list[HAProxy] = []

    def start(config_text: str) -> HAProxy:
        config = tmp_path / f"haproxy{len(started)}.cfg"
        config.write_text(config_text)
        proxy = HAProxy(binary, config, tmp_path / f"haproxy{len(started)}.log")
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


def haproxy_config(control_port: int, nodes: list[tuple[str, int, range | None]]) -> str:
    """A TCP balancer: the control port round robin over the nodes, and each node's
    passive range (when given) forwarded to that node, all with send-proxy-v2."""
    lines = [
        "global",
        "    maxconn 200",
        "defaults",
        "    mode tcp",
        "    timeout connect 5s",
        "    timeout client 60s",
        "    timeout server 60s",
        "frontend ftp",
        f"    bind {BALANCER}:{control_port}",
        "    default_backend nodes",
        "backend nodes",
        "    balance roundrobin",
    ]
    for index, (host, port, _) in enumerate(nodes, 1):
        lines.append(f"    server node{index} {host}:{port} send-proxy-v2 source {BALANCER_SOURCE} "
                     "check inter 500ms")
    for index, (host, _, ports) in enumerate(nodes, 1):
        if ports is None:
            continue
        lines += [
            f"frontend passive{index}",
            f"    bind {BALANCER}:{ports.start}-{ports.stop - 1}",
            f"    default_backend passive{index}",
            f"backend passive{index}",
            # no port: the one the client connected to
            f"    server node{index} {host} send-proxy-v2 source {BALANCER_SOURCE}",
        ]
    return "\n".join(lines) + "\n"


def node_config(tmp_path: Path, index: int, host: str, password_hash: str, *,
                announce: str, ports: range) -> Path:
    """One node: its own listener and passive range, the shared storage and account."""
    config = tmp_path / f"node{index}.toml"
    config.write_text(f"""
[[listeners]]
host = "{host}"
port = 0
proxy_protocol = "v2"
proxy_trusted = ["{BALANCER_SOURCE}"]

[passive]
address = "{announce}"
ports = "{ports.start}-{ports.stop - 1}"

[storage]
root = "{tmp_path / 'files'}"

[logging]
xferlog = "{tmp_path / f'xferlog{index}'}"

[[users.static]]
login = "alice"
password_hash = "{password_hash}"
""")
    return config


def hash_password(tmp_path: Path, password: str) -> str:
    done = run_cli("hash-password", "--password-stdin", cwd=tmp_path, stdin=password + "\n")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def ftp_session(port: int, *, source: str = CLIENT, trust_pasv: bool = False) -> ftplib.FTP:
    ftp = ftplib.FTP(timeout=TIMEOUT, source_address=(source, 0))
    # False (ftplib's default): data goes to the control connection's host, the
    # balancer; True: to the address in the 227 reply (a node, when it announces itself)
    ftp.trust_server_pasv_ipv4_address = trust_pasv
    ftp.connect(BALANCER, port)
    ftp.login("alice", "pw")
    return ftp


def retr(ftp: ftplib.FTP, name: str) -> bytes:
    chunks: list[bytes] = []
    ftp.retrbinary("RETR " + name, chunks.append)
    return b"".join(chunks)


def pasv_port(ftp: ftplib.FTP) -> int:
    numbers = re.search(r"\((\d+(?:,\d+){5})\)", ftp.sendcmd("PASV")).group(1).split(",")  # type: ignore[union-attr]
    return int(numbers[4]) * 256 + int(numbers[5])


def test_three_nodes_behind_haproxy_with_forwarded_passive_ranges(tmp_path: Path, start_gateway,
                                                                  start_haproxy) -> None:
    taken: set[int] = set()
    password_hash = hash_password(tmp_path, "pw")
    nodes = []
    for index, host in enumerate(NODES, 1):
        ports = free_ports((BALANCER, host), PASSIVE_PORTS, taken)
        config = node_config(tmp_path, index, host, password_hash, announce=BALANCER, ports=ports)
        process = start_gateway("-c", str(config))
        assert "behind a load balancer: PROXY protocol v2 headers of 127.0.0.9/32" in process.output
        nodes.append((host, process.port, ports, process))
    control_port = free_ports((BALANCER,), 1, taken).start
    balancer = start_haproxy(haproxy_config(control_port, [(h, p, r) for h, p, r, _ in nodes]))
    balancer.wait_listening(control_port)

    # round robin: sessions until every node has served one (a node whose first health
    # checks are still running may be skipped at first); each uploads through one
    # node and reads back what another node's session uploaded
    served: dict[int, list[str]] = {}
    uploaded: dict[str, bytes] = {}
    deadline = time.monotonic() + TIMEOUT
    round_number = 0
    while len(served) < len(nodes):
        assert time.monotonic() < deadline, "haproxy never sent a session to every node"
        round_number += 1
        name = f"file{round_number}.bin"
        data = os.urandom(200_000 + round_number)
        ftp = ftp_session(control_port)
        try:
            ftp.storbinary(f"STOR {name}", io.BytesIO(data))
            for earlier, content in uploaded.items():
                assert retr(ftp, earlier) == content
            assert retr(ftp, name) == data
        finally:
            ftp.quit()
        uploaded[name] = data
        outputs = [process.output for *_, process in nodes]
        for index, output in enumerate(outputs):
            if output.count("logged in as 'alice'") > len(served.get(index, [])):
                served.setdefault(index, []).append(name)

    for index, (*_, process) in enumerate(nodes):
        output = process.output
        assert re.search(r"connection from 127\.0\.0\.5:\d+ via balancer 127\.0\.0\.9", output), output
        assert "refused" not in output, output  # health checks (PROXY LOCAL) included
        assert "Traceback" not in output, output
        xferlog = (tmp_path / f"xferlog{index + 1}").read_text()
        assert f" {CLIENT} " in xferlog and BALANCER_SOURCE not in xferlog, xferlog

    # a data connection through the balancer from another client is refused; the real
    # client's own, after it, is the transfer's
    ftp = ftp_session(control_port)
    try:
        port = pasv_port(ftp)
        with socket.create_connection((BALANCER, port), TIMEOUT, source_address=(STRANGER, 0)) as stolen:
            assert stolen.recv(100) == b""  # the node closed it
        with socket.create_connection((BALANCER, port), TIMEOUT, source_address=(CLIENT, 0)) as data:
            assert ftp.sendcmd("RETR file1.bin").startswith("150")
            received = b""
            while chunk := data.recv(65536):
                received += chunk
        assert ftp.voidresp().startswith("226")
        assert received == uploaded["file1.bin"]
    finally:
        ftp.quit()
    outputs = "\n".join(process.output for *_, process in nodes)
    assert re.search(r"refused data connection from 127\.0\.0\.6:\d+ via balancer 127\.0\.0\.9 "
                     r"\(control peer is 127\.0\.0\.5\)", outputs), outputs

    # an independent client through the balancer: curl (EPSV) uploads and downloads
    curl = shutil.which("curl")
    assert curl, "curl is not installed: run scripts/install-test-deps.sh"
    source_file = tmp_path / "by-curl.bin"
    source_file.write_bytes(os.urandom(100_000))
    url = f"ftp://alice:pw@{BALANCER}:{control_port}/by-curl.bin"
    put = subprocess.run([curl, "-sS", "--interface", CLIENT, "-T", str(source_file), url],
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert put.returncode == 0, put.stderr
    got = subprocess.run([curl, "-sS", "--interface", CLIENT, url], capture_output=True, timeout=TIMEOUT)
    assert got.returncode == 0, got.stderr
    assert got.stdout == source_file.read_bytes()


def test_direct_passive_ports_behind_haproxy(tmp_path: Path, start_gateway, start_haproxy) -> None:
    """The other deployment: the balancer carries only the control connection; the
    node announces its own address and the client connects to it directly (no
    header: its own address is checked against the control connection's client)."""
    taken: set[int] = set()
    host = NODES[0]
    ports = free_ports((host,), PASSIVE_PORTS, taken)
    config = node_config(tmp_path, 1, host, hash_password(tmp_path, "pw"), announce=host, ports=ports)
    node = start_gateway("-c", str(config))
    control_port = free_ports((BALANCER,), 1, taken).start
    balancer = start_haproxy(haproxy_config(control_port, [(host, node.port, None)]))
    balancer.wait_listening(control_port)

    data = os.urandom(150_000)
    ftp = ftp_session(control_port, trust_pasv=True)
    try:
        ftp.storbinary("STOR direct.bin", io.BytesIO(data))
        assert retr(ftp, "direct.bin") == data
        # someone else reaching the node's passive port directly is refused
        port = pasv_port(ftp)
        with socket.create_connection((host, port), TIMEOUT, source_address=(STRANGER, 0)) as stolen:
            try:
                assert stolen.recv(100) == b""
            except ConnectionResetError:
                pass
        with socket.create_connection((host, port), TIMEOUT, source_address=(CLIENT, 0)) as direct:
            assert ftp.sendcmd("RETR direct.bin").startswith("150")
            received = b""
            while chunk := direct.recv(65536):
                received += chunk
        assert ftp.voidresp().startswith("226") and received == data
    finally:
        ftp.quit()
    output = node.output
    assert re.search(r"connection from 127\.0\.0\.5:\d+ via balancer 127\.0\.0\.9", output), output
    assert re.search(r"refused data connection from 127\.0\.0\.6:\d+ \(control peer is 127\.0\.0\.5\)",
                     output), output
    assert f" {CLIENT} " in (tmp_path / "xferlog1").read_text()
