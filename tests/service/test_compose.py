"""docker-compose.yml, checked without a Docker engine: it parses, its services fit
together, and the gateway's settings in it are accepted by the configuration loader."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from gateway.config import load_settings

ROOT = Path(__file__).resolve().parents[2]


def _substitute(value: str) -> str:
    """Compose's ``${NAME:-default}`` with NAME unset."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_fit_together():
    services = compose()["services"]
    assert {"postgres", "minio", "createbucket", "migrate", "gateway"} <= set(services)
    gateway = services["gateway"]
    env = {k: _substitute(str(v)) for k, v in gateway["environment"].items()}
    # the database and S3 endpoint are services of this file
    assert urlsplit(env["GATEWAY_DATABASE_URL"]).hostname == "postgres"
    assert urlsplit(env["AWS_ENDPOINT_URL"]).hostname == "minio"
    postgres = services["postgres"]["environment"]
    database = urlsplit(env["GATEWAY_DATABASE_URL"])
    assert (database.username, database.password, database.path.lstrip("/")) == (
        postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"], postgres["POSTGRES_DB"]
    )
    minio = services["minio"]["environment"]
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == (
        minio["MINIO_ROOT_USER"], minio["MINIO_ROOT_PASSWORD"]
    )
    # the schema is migrated and the bucket exists before the gateway starts
    depends = gateway["depends_on"]
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert depends["createbucket"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["migrate"]["environment"]["GATEWAY_DATABASE_URL"] == env["GATEWAY_DATABASE_URL"]


def test_gateway_settings_are_accepted_and_ports_published():
    services = compose()["services"]
    gateway = services["gateway"]
    env = {k: _substitute(str(v)) for k, v in gateway["environment"].items()}
    mounts = dict(volume.split(":")[:2] for volume in gateway["volumes"])
    command = gateway["command"]
    config_in_container = command[command.index("--config") + 1]
    host_file = next(ROOT / src for src, dst in mounts.items() if dst == config_in_container)
    settings = load_settings(host_file, env={**env, "GATEWAY_PASSIVE_ADDRESS": env["GATEWAY_PASSIVE_ADDRESS"]})

    assert settings.users.source == "database"
    assert settings.users.database.url == env["GATEWAY_DATABASE_URL"]
    assert settings.passive.address == "127.0.0.1"
    bucket = urlsplit(settings.storage.root).netloc
    assert settings.storage.root.startswith("s3://")
    create = " ".join(services["createbucket"]["entrypoint"])
    assert f"local/{bucket}" in create  # the bucket the gateway serves is created

    published: set[int] = set()
    for mapping in gateway["ports"]:
        host, _, container = str(mapping).partition(":")
        low, _, high = container.partition("-")
        published.update(range(int(low), int(high or low) + 1))
    assert all(listener.port in published for listener in settings.listeners)
    assert settings.passive.ports is not None and set(settings.passive.ports) <= published
    assert settings.metrics.listen is not None and settings.metrics.listen[1] in published
    assert all(listener.host == "0.0.0.0" for listener in settings.listeners)
    # a shutdown grace shorter than compose's stop grace period, so transfers can finish
    stop = int(str(gateway["stop_grace_period"]).rstrip("s"))
    assert settings.shutdown_grace < stop


def test_dockerfile_ships_what_the_stack_runs():
    text = (ROOT / "Dockerfile").read_text()
    # every COPY source exists in the checkout (a moved folder would break the build)
    sources = [line.split()[1:-1] for line in text.splitlines() if line.startswith("COPY ")]
    assert sources and all((ROOT / name).exists() for names in sources for name in names), sources
    # the image runs the installed package, whose wheel carries the Alembic history
    # (tests/service/test_wheel.py), so `gateway db upgrade` needs no extra path
    assert "pip install --no-cache-dir ." in text
    assert "GATEWAY_MIGRATIONS" not in text
    assert 'ENTRYPOINT ["gateway"]' in text
    for port in ("2121", "30000-30009", "9121"):
        assert port in text


def test_gateway_healthcheck_greets(tmp_path, start_gateway):
    """The compose healthcheck's command, run against a real server on its port."""
    import subprocess
    import sys

    command = compose()["services"]["gateway"]["healthcheck"]["test"]
    assert command[:3] == ["CMD", "python", "-c"]
    server = start_gateway("--port", "0")
    probe = command[3].replace("2121", str(server.port))
    assert subprocess.run([sys.executable, "-c", probe], timeout=30).returncode == 0
    server.signal()
    server.wait_exit()
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=30).returncode != 0
