"""docker-compose.cluster.yml and docker/haproxy.cfg, checked without a Docker engine:
the file parses and its services fit together, every node's settings load with the
gateway's configuration loader, HAProxy's configuration passes ``haproxy -c`` and
matches the nodes (PROXY v2 to each, each passive range to its own node, health
checks on the nodes' ``/readyz``)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml  # type: ignore[import-untyped]

from gateway.config import load_settings
from gateway.config.model import Settings
from gateway.observe.health import HEALTH_PATHS

from .test_balancer import haproxy_binary
from .test_compose import _substitute

ROOT = Path(__file__).resolve().parents[2]
NODES = ("gateway1", "gateway2", "gateway3")


def services() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.cluster.yml").read_text())["services"]


def haproxy_cfg() -> str:
    return (ROOT / "docker" / "haproxy.cfg").read_text()


def sections(text: str) -> dict[str, list[str]]:
    """HAProxy's sections (``backend nodes``, ...) and their lines, comments dropped."""
    found: dict[str, list[str]] = {}
    current: list[str] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line:
            continue
        if not line[0].isspace():
            current = found.setdefault(line.strip(), [])
        else:
            current.append(line.strip())
    return found


def node_settings(name: str) -> Settings:
    node = services()[name]
    env = {key: _substitute(str(value)) for key, value in node["environment"].items()}
    mounts = dict(volume.split(":")[:2] for volume in node["volumes"])
    command = node["command"]
    config = command[command.index("--config") + 1]
    host_file = next(ROOT / src for src, dst in mounts.items() if dst == config)
    return load_settings(host_file, env=env)


def published(mappings: list[str]) -> set[int]:
    ports: set[int] = set()
    for mapping in mappings:
        host, _, _container = str(mapping).partition(":")
        low, _, high = host.partition("-")
        ports.update(range(int(low), int(high or low) + 1))
    return ports


def test_haproxy_configuration_is_valid() -> None:
    checked = subprocess.run([haproxy_binary(), "-c", "-f", str(ROOT / "docker" / "haproxy.cfg")],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Configuration file is valid" in checked.stdout + checked.stderr


def test_services_fit_together() -> None:
    found = services()
    assert {"postgres", "minio", "createbucket", "migrate", "haproxy", *NODES} <= set(found)
    postgres = found["postgres"]["environment"]
    minio = found["minio"]["environment"]
    for name in NODES:
        node = found[name]
        env = {key: _substitute(str(value)) for key, value in node["environment"].items()}
        database = urlsplit(env["GATEWAY_DATABASE_URL"])
        assert database.hostname == "postgres"
        assert (database.username, database.password, database.path.lstrip("/")) == (
            postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"], postgres["POSTGRES_DB"])
        assert urlsplit(env["AWS_ENDPOINT_URL"]).hostname == "minio"
        assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == (
            minio["MINIO_ROOT_USER"], minio["MINIO_ROOT_PASSWORD"])
        assert node["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert node["depends_on"]["createbucket"]["condition"] == "service_completed_successfully"
        assert "ports" not in node  # clients reach the nodes through HAProxy only
    assert found["migrate"]["command"] == ["db", "upgrade"]


def test_nodes_trust_haproxy_and_own_disjoint_passive_ranges() -> None:
    found = services()
    haproxy = found["haproxy"]
    balancer_address = haproxy["networks"]["ftpnet"]["ipv4_address"]
    outside = published(haproxy["ports"])
    ranges: dict[str, range] = {}
    for name in NODES:
        settings = node_settings(name)
        assert settings.users.source == "database" and settings.storage.root.startswith("s3://")
        bucket = urlsplit(settings.storage.root).netloc
        assert f"local/{bucket}" in " ".join(found["createbucket"]["entrypoint"])
        for listener in settings.listeners:
            assert listener.proxy_protocol == "v2"
            assert listener.proxy_trusted == (f"{balancer_address}/32",)
            assert listener.port in outside
        assert settings.passive.ports is not None
        assert settings.passive.address == "127.0.0.1"  # HAProxy's, as the clients reach it
        assert set(settings.passive.ports) <= outside
        ranges[name] = settings.passive.ports
        stop = int(str(found[name]["stop_grace_period"]).rstrip("s"))
        assert settings.shutdown_grace < stop
    claimed = [port for ports in ranges.values() for port in ports]
    assert len(claimed) == len(set(claimed)), ranges


def test_haproxy_forwards_each_range_to_its_node_with_proxy_v2() -> None:
    config = sections(haproxy_cfg())
    nodes = config["backend nodes"]
    assert "option httpchk GET /readyz" in nodes and "/readyz" in HEALTH_PATHS
    assert "http-check expect status 200" in nodes
    for name in NODES:
        settings = node_settings(name)
        assert settings.metrics.listen is not None
        listen_port = settings.listeners[0].port
        server = next(line for line in nodes if line.startswith(f"server {name} "))
        assert f" {name}:{listen_port} " in server and "send-proxy-v2" in server.split()
        assert re.search(rf"\bcheck port {settings.metrics.listen[1]}\b", server), server
        # the frontend binding exactly this node's range leads to this node only
        ports = settings.passive.ports
        assert ports is not None
        bind = f"bind :{ports.start}-{ports.stop - 1}"
        frontend = next(lines for title, lines in config.items()
                        if title.startswith("frontend ") and bind in lines)
        backend = next(line.split()[1] for line in frontend if line.startswith("default_backend "))
        servers = [line.split() for line in config[f"backend {backend}"] if line.startswith("server ")]
        assert servers == [["server", name, name, "send-proxy-v2"]], servers
    control = next(lines for title, lines in config.items()
                   if title.startswith("frontend ") and "default_backend nodes" in lines)
    assert "bind :2121" in control
