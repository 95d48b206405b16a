"""Nodes failing behind a real HAProxy: one killed mid-upload, one stopped and drained.

Three ``gateway serve`` nodes share one PostgreSQL database of accounts and one
SeaweedFS bucket, behind HAProxy speaking the PROXY protocol v2, laid out on loopback
as in test_balancer.py (client 127.0.0.5, balancer 127.0.0.1 connecting from
127.0.0.9, nodes 127.0.0.11-13).  Each node has its own passive port range, forwarded
by the balancer, so the port in a PASV reply tells which node holds the session.

HAProxy checks each node's ``/readyz`` (beside ``/metrics``): 503 from SIGTERM on, so
a draining node is taken out while its running transfers finish; a node that is gone
fails the check too.  A connection the balancer sends to a node that no longer
listens (before the check has noticed) is retried on another node (``option
redispatch``).
"""

from __future__ import annotations

import ftplib
import hashlib
import os
import re
import signal
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.s3.conftest import all_keys, open_uploads, raw_client
from tests.s3.seaweed import S3Endpoint
from tests.users_db.conftest import (  # noqa: F401  (fixtures: PostgreSQL databases)
    add_account,
    database_url,
    postgres_admin_url,
    postgres_template,
    run_async,
    sqlite_template,
)

from .conftest import GATEWAY, METRICS_PATTERN, GatewayProcess, base_env, run_cli
from .test_balancer import (
    BALANCER,
    BALANCER_SOURCE,
    CLIENT,
    NODES,
    PASSIVE_PORTS,
    TIMEOUT,
    HAProxy,
    free_ports,
    pasv_port,
    start_haproxy,  # noqa: F401  (fixture)
)

MIB = 1024 * 1024
#: Small enough that a few MiB make a multipart upload already in flight.
PART_SIZE = 5 * MIB
HEARTBEAT = 0.5
STALE_AFTER = 4.0


@pytest.fixture
def database_kind() -> str:
    """Several nodes share the accounts: PostgreSQL only."""
    return "postgresql"


@dataclass
class Node:
    index: int
    host: str
    process: GatewayProcess
    passive: range
    http_port: int = 0

    @property
    def name(self) -> str:
        return f"node{self.index}"

    def logins(self, login: str) -> int:
        return self.process.output.count(f"logged in as '{login}'")

    def probe(self, path: str) -> tuple[int, str]:
        """(status, body) of GET ``path`` on the node's HTTP endpoint."""
        try:
            with urllib.request.urlopen(f"http://{self.host}:{self.http_port}{path}", timeout=TIMEOUT) as reply:
                return reply.status, reply.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()


@dataclass
class Cluster:
    nodes: list[Node]
    balancer: HAProxy
    control_port: int
    stats_socket: Path
    config: Path  # node 1's configuration (the same settings as every node's)

    def holding(self, passive_port: int) -> Node:
        return next(node for node in self.nodes if passive_port in node.passive)

    def server_states(self) -> dict[str, str]:
        """HAProxy's view of the control backend: server name -> UP, DOWN, ..."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(TIMEOUT)
            try:
                sock.connect(str(self.stats_socket))
            except (FileNotFoundError, ConnectionRefusedError):
                return {}  # HAProxy is still starting
            sock.sendall(b"show stat\n")
            text = b""
            while chunk := sock.recv(65536):
                text += chunk
        header, *rows = text.decode().splitlines()
        columns = header.lstrip("# ").split(",")
        states = {}
        for row in rows:
            fields = dict(zip(columns, row.split(","), strict=False))
            if fields.get("pxname") == "nodes" and fields.get("svname", "").startswith("node"):
                states[fields["svname"]] = fields["status"]
        return states

    def wait_state(self, node: Node, wanted: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while (states := self.server_states()).get(node.name, "").split(" ")[0] != wanted:
            assert time.monotonic() < deadline, f"haproxy never saw {node.name} {wanted}: {states}"
            time.sleep(0.1)  # polling HAProxy's health-check state


def cluster_haproxy_config(control_port: int, nodes: list[Node], ports: dict[int, int],
                           stats_socket: Path) -> str:
    """The control port round robin over the nodes, checked on their ``/readyz``; each
    node's passive range forwarded to it; PROXY v2 on every connection to a node."""
    lines = [
        "global",
        "    maxconn 200",
        f"    stats socket {stats_socket} level admin",
        "defaults",
        "    mode tcp",
        "    timeout connect 5s",
        "    timeout client 60s",
        "    timeout server 60s",
        "    retries 3",
        "    option redispatch 1",  # a refused connection is retried on another node
        "frontend ftp",
        f"    bind {BALANCER}:{control_port}",
        "    default_backend nodes",
        "backend nodes",
        "    balance roundrobin",
        "    option httpchk GET /readyz",
        "    http-check expect status 200",
    ]
    for node in nodes:
        lines.append(f"    server {node.name} {node.host}:{ports[node.index]} send-proxy-v2 "
                     f"source {BALANCER_SOURCE} check port {node.http_port} inter 300ms fall 1 rise 2")
    for node in nodes:
        lines += [
            f"frontend passive{node.index}",
            f"    bind {BALANCER}:{node.passive.start}-{node.passive.stop - 1}",
            f"    default_backend passive{node.index}",
            f"backend passive{node.index}",
            f"    server {node.name} {node.host} send-proxy-v2 source {BALANCER_SOURCE}",
        ]
    return "\n".join(lines) + "\n"


def cluster_node_config(tmp_path: Path, index: int, host: str, passive: range, database: str,
                        s3: S3Endpoint, root: str) -> Path:
    config = tmp_path / f"node{index}.toml"
    config.write_text(f"""
[[listeners]]
host = "{host}"
port = 0
proxy_protocol = "v2"
proxy_trusted = ["{BALANCER_SOURCE}"]

[server]
shutdown_grace = "60s"

[passive]
address = "{BALANCER}"
ports = "{passive.start}-{passive.stop - 1}"

[storage]
root = "{root}"

[storage.options]
endpoint_url = "{s3.endpoint_url}"
aws_access_key_id = "{s3.access_key}"
aws_secret_access_key = "{s3.secret_key}"
region_name = "{s3.region}"
addressing_style = "path"
part_size = {PART_SIZE}
parts_in_flight = 2
max_attempts = 3

[users.database]
url = "{database}"
cache_ttl = 0.2
heartbeat_interval = {HEARTBEAT}
stale_after = {STALE_AFTER}

[metrics]
listen = "{host}:0"
""")
    return config


@pytest.fixture
def cluster(tmp_path: Path, database_url: str, s3_service: S3Endpoint, s3_prefix: str,  # noqa: F811
            start_haproxy: Callable[[str], HAProxy]) -> Iterator[Cluster]:  # noqa: F811
    """Three nodes (started together) behind HAProxy, every node UP; the accounts:
    alice, allowed one session at a time, and bob, unlimited."""
    root = f"s3://{s3_service.bucket}/{s3_prefix}"
    run_async(lambda: add_account(database_url, "alice", "pw", root=f"{root}/alice", maximum_connections=1))
    run_async(lambda: add_account(database_url, "bob", "pw", root=f"{root}/bob"))
    taken: set[int] = set()
    nodes: list[Node] = []
    try:
        for attempt in range(3):
            nodes = []
            for index, host in enumerate(NODES, 1):
                passive = free_ports((BALANCER, host), PASSIVE_PORTS, taken)
                config = cluster_node_config(tmp_path, index, host, passive, database_url, s3_service, root)
                process = GatewayProcess([*GATEWAY, "serve", "-c", str(config)], tmp_path, base_env())
                nodes.append(Node(index, host, process, passive))
            control_ports = {node.index: node.process.wait_ready()[0] for node in nodes}
            for node in nodes:
                node.http_port = int(node.process.wait_for(METRICS_PATTERN).group(2))
            control_port = free_ports((BALANCER,), 1, taken).start
            stats_socket = tmp_path / f"haproxy{attempt}.sock"
            balancer = start_haproxy(cluster_haproxy_config(control_port, nodes, control_ports, stats_socket))
            try:
                balancer.wait_listening(control_port)
                break
            except AssertionError as exc:
                # a port found free was taken by another process before HAProxy bound
                # it (tests run side by side): new ranges, new nodes
                if "cannot bind socket" not in str(exc) or attempt == 2:
                    raise
                for node in nodes:
                    node.process.stop()
        built = Cluster(nodes, balancer, control_port, stats_socket, tmp_path / "node1.toml")
        for node in nodes:
            built.wait_state(node, "UP")
        yield built
    finally:
        for node in nodes:
            node.process.stop()


def login(cluster: Cluster, user: str) -> ftplib.FTP:
    ftp = ftplib.FTP(timeout=TIMEOUT, source_address=(CLIENT, 0))
    ftp.connect(BALANCER, cluster.control_port)
    try:
        ftp.login(user, "pw")
        ftp.voidcmd("TYPE I")
    except BaseException:
        ftp.close()
        raise
    return ftp


def open_transfer(cluster: Cluster, ftp: ftplib.FTP, command: str) -> tuple[Node, socket.socket]:
    """PASV, the data connection through the balancer, then ``command`` (150):
    the node holding the session, and the data socket."""
    port = pasv_port(ftp)
    data = socket.create_connection((BALANCER, port), TIMEOUT, source_address=(CLIENT, 0))
    reply = ftp.sendcmd(command)
    assert reply.startswith("150"), reply
    return cluster.holding(port), data


def receive_all(data: socket.socket, sha: Any) -> int:
    size = 0
    while chunk := data.recv(256 * 1024):
        sha.update(chunk)
        size += len(chunk)
    data.close()
    return size


def upload_whole(cluster: Cluster, user: str, name: str, payload: bytes) -> None:
    ftp = login(cluster, user)
    try:
        _, data = open_transfer(cluster, ftp, f"STOR {name}")
        with data:
            data.sendall(payload)
        assert ftp.voidresp().startswith("226")
    finally:
        ftp.quit()


def download_sha256(cluster: Cluster, user: str, name: str) -> str:
    ftp = login(cluster, user)
    try:
        _, data = open_transfer(cluster, ftp, f"RETR {name}")
        sha = hashlib.sha256()
        receive_all(data, sha)
        assert ftp.voidresp().startswith("226")
    finally:
        ftp.quit()
    return sha.hexdigest()


def wait_for(check: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)  # polling an outside service's state


def bucket(s3: S3Endpoint, action: Callable[[Any], Any]) -> Any:
    async def run() -> Any:
        async with raw_client(s3) as client:
            return await action(client)

    return run_async(run)


def test_node_killed_mid_upload(cluster: Cluster, s3_service: S3Endpoint, s3_prefix: str,
                                tmp_path: Path) -> None:
    shared = os.urandom(4 * MIB)
    upload_whole(cluster, "bob", "shared.bin", shared)

    # alice starts a large upload; her node is the one to die
    alice = login(cluster, "alice")
    victim, upload = open_transfer(cluster, alice, "STOR big.bin")
    # bob starts a download on another node (round robin moves on: a few tries at most)
    reader: ftplib.FTP | None = None
    for _ in range(6):
        candidate = login(cluster, "bob")
        port = pasv_port(candidate)
        if cluster.holding(port) is not victim:
            reader = candidate
            break
        candidate.quit()
    assert reader is not None, "every bob session landed on alice's node"
    download = socket.create_connection((BALANCER, port), TIMEOUT, source_address=(CLIENT, 0))
    assert reader.sendcmd("RETR shared.bin").startswith("150")
    downloaded = hashlib.sha256()
    downloaded.update(first := download.recv(256 * 1024))
    assert first

    # a multipart upload is in flight when the node is killed
    block = os.urandom(MIB)
    for _ in range(2 * PART_SIZE // MIB + 2):
        upload.sendall(block)
    alice_prefix = f"{s3_prefix}/alice/"
    wait_for(lambda: bool(bucket(s3_service, lambda c: open_uploads(c, s3_service.bucket, alice_prefix))),
             "the multipart upload to begin")
    victim.process.signal(signal.SIGKILL)
    victim.process.wait_exit(TIMEOUT)
    died = time.monotonic()

    # alice's upload fails: the rest cannot be sent, or no 226 comes
    outcome = ""
    try:
        for _ in range(64):
            upload.sendall(block)
        upload.close()
        outcome = alice.getline()
    except (OSError, EOFError) as exc:
        outcome = repr(exc)
    finally:
        upload.close()
        alice.close()
    assert not outcome.startswith("226"), outcome

    # bob's download on another node goes on to the end, bytes intact
    size = len(first) + receive_all(download, downloaded)
    assert reader.voidresp().startswith("226")
    reader.quit()
    assert (size, downloaded.hexdigest()) == (len(shared), hashlib.sha256(shared).hexdigest())

    # alice's only slot is held by the dead node until its rows go stale, then free
    attempt = ftplib.FTP(timeout=TIMEOUT, source_address=(CLIENT, 0))
    attempt.connect(BALANCER, cluster.control_port)
    try:
        with pytest.raises(ftplib.error_perm) as refused:
            attempt.login("alice", "pw")
        answered = time.monotonic()
    finally:
        attempt.close()
    if answered < died + STALE_AFTER - HEARTBEAT:  # asked before the slot could be stale
        assert "too many connections" in str(refused.value), refused.value
    again: list[ftplib.FTP] = []

    def logs_in() -> bool:
        try:
            again.append(login(cluster, "alice"))
        except ftplib.error_perm:
            return False
        return True

    wait_for(logs_in, "alice's slot to be freed", timeout=STALE_AFTER + TIMEOUT)
    alice = again[0]
    try:
        # nothing where the whole file would be, no temporary either
        assert alice.nlst() == []
        with pytest.raises(ftplib.error_perm, match="^550"):
            alice.size("big.bin")
    finally:
        alice.quit()
    assert bucket(s3_service, lambda c: all_keys(c, s3_service.bucket, alice_prefix)) == []
    assert download_sha256(cluster, "bob", "shared.bin") == hashlib.sha256(shared).hexdigest()

    # what the dead node left (its open multipart upload) goes with a repair
    repaired = run_cli("serve", "-c", str(cluster.config), "--repair", cwd=tmp_path,
                       env=base_env(GATEWAY_STORAGE_STALE_TEMPORARY_AGE="0"))
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "big.bin" in repaired.stdout, repaired.stdout
    assert bucket(s3_service, lambda c: open_uploads(c, s3_service.bucket, alice_prefix)) == []
    for node in cluster.nodes:
        if node is not victim:
            assert "Traceback" not in node.process.output, node.process.output


def test_node_stopped_drains_behind_haproxy(cluster: Cluster) -> None:
    for node in cluster.nodes:
        assert node.probe("/readyz") == (200, "ready\n")
        assert node.probe("/healthz") == (200, "alive\n")
    payload = os.urandom(6 * MIB)
    half = len(payload) // 2

    alice = login(cluster, "alice")
    draining, upload = open_transfer(cluster, alice, "STOR drained.bin")
    upload.sendall(payload[:half])
    logins_before = draining.logins("bob")
    draining.process.signal(signal.SIGTERM)

    # the node reports it is draining and the balancer takes it out
    wait_for(lambda: draining.probe("/readyz") == (503, "draining\n"), "/readyz to answer draining")
    assert draining.probe("/healthz") == (200, "alive\n")  # alive: nothing should restart it
    cluster.wait_state(draining, "DOWN")

    # new clients meanwhile: all served, none by the draining node
    others = [node for node in cluster.nodes if node is not draining]
    served_before = sum(node.logins("bob") for node in others)
    for number in range(4):
        small = os.urandom(100_000 + number)
        upload_whole(cluster, "bob", f"meanwhile{number}.bin", small)
        assert download_sha256(cluster, "bob", f"meanwhile{number}.bin") == hashlib.sha256(small).hexdigest()
    assert draining.logins("bob") == logins_before
    assert sum(node.logins("bob") for node in others) == served_before + 8

    # the running upload finishes whole, then the session is told the server is closing
    upload.sendall(payload[half:])
    upload.close()
    assert alice.voidresp().startswith("226")
    try:
        closing = alice.getline()
    except (OSError, EOFError) as exc:
        closing = repr(exc)
    alice.close()
    assert closing.startswith("421"), closing
    assert draining.process.wait_exit(TIMEOUT) == 0
    assert re.search(r"stopping: transfers get 60 s to finish", draining.process.output)
    assert download_sha256(cluster, "alice", "drained.bin") == hashlib.sha256(payload).hexdigest()
    for node in cluster.nodes:
        assert "Traceback" not in node.process.output, node.process.output
