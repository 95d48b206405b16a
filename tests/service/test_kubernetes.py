"""deploy/kubernetes, checked without a cluster: every manifest against Kubernetes'
own schemas (kubernetes-validate, strict), and the manifests against the gateway:
its configuration loader accepts the ConfigMap's gateway.toml, the probes name the
health endpoint's paths and port, the grace period covers the drain, and the Service
carries the control port and the passive range."""

from __future__ import annotations

import copy
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml  # type: ignore[import-untyped]
from prometheus_client import CollectorRegistry, Counter, make_wsgi_app

from gateway.config import load_settings
from gateway.config.model import Settings
from gateway.observe.health import HEALTH_PATHS, Health, serve_endpoint

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "deploy" / "kubernetes"
#: An older release still common in clusters, and the newest the validator knows.
VERSIONS = ("1.29.0", kubernetes_validate.latest_version())


def manifests() -> dict[str, list[dict[str, Any]]]:
    """Every YAML document of the folder but the kustomization, by file name."""
    found = {}
    for path in sorted(FOLDER.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            found[path.name] = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def resource(kind: str) -> dict[str, Any]:
    matching = [doc for docs in manifests().values() for doc in docs if doc["kind"] == kind]
    assert len(matching) == 1, f"expected one {kind}, found {len(matching)}"
    return matching[0]


def container() -> dict[str, Any]:
    containers = resource("Deployment")["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "gateway")


def configmap_settings(scratch: Path) -> Settings:
    """The ConfigMap's gateway.toml, with the environment the Deployment gives it."""
    configmap = resource("ConfigMap")
    mount = next(m for m in container()["volumeMounts"]
                 if m["name"] == _volume_of_configmap(configmap["metadata"]["name"]))
    args = container()["args"]
    config_path = Path(args[args.index("--config") + 1])
    assert config_path.parent == Path(mount["mountPath"])
    text = configmap["data"][config_path.name]
    env = {var["name"]: var.get("value", "set-by-kubernetes") for var in container()["env"]}
    env["GATEWAY_DATABASE_URL"] = resource("Secret")["stringData"]["database-url"]
    env["GATEWAY_PASSIVE_ADDRESS"] = "10.0.1.5"  # a node's address (status.hostIP)
    file = scratch / config_path.name
    file.write_text(text)
    return load_settings(file, env=env)


def _volume_of_configmap(name: str) -> str:
    volumes = resource("Deployment")["spec"]["template"]["spec"]["volumes"]
    return next(v["name"] for v in volumes if v.get("configMap", {}).get("name") == name)


def _container_port(name_or_number: str | int) -> int:
    if isinstance(name_or_number, int):
        return name_or_number
    return next(p["containerPort"] for p in container()["ports"] if p["name"] == name_or_number)


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_is_valid_kubernetes(version: str) -> None:
    found = manifests()
    assert {"configmap.yaml", "secret.yaml", "deployment.yaml", "service.yaml"} <= set(found)
    for name, docs in found.items():
        for doc in docs:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                raise AssertionError(f"{name}: {doc['kind']} is not valid for Kubernetes {version}: "
                                     f"{exc.message} at {list(exc.path)}") from None
    # the validator does catch a broken manifest (a Deployment without a selector)
    broken = copy.deepcopy(resource("Deployment"))
    del broken["spec"]["selector"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, version, strict=True)


def test_kustomization_lists_every_manifest_and_the_image() -> None:
    kustomization = yaml.safe_load((FOLDER / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == sorted(manifests())
    images = {image["name"] for image in kustomization["images"]}
    for kind in ("Deployment", "Job"):
        for spec in resource(kind)["spec"]["template"]["spec"]["containers"]:
            assert spec["image"].rsplit(":", 1)[0] in images


def test_configmap_is_a_valid_gateway_configuration(tmp_path: Path) -> None:
    settings = configmap_settings(tmp_path)
    assert settings.users.source == "database"
    assert settings.storage.root.startswith("s3://")
    assert settings.passive.ports is not None and len(settings.passive.ports) > 0
    assert settings.passive.address == "10.0.1.5"
    assert settings.metrics.listen is not None
    for listener in settings.listeners:
        assert listener.proxy_protocol in ("v1", "v2", "any") and listener.proxy_trusted
        assert listener.host == "0.0.0.0"
        assert listener.port == _container_port("ftp")


def test_deployment_fits_the_gateway(tmp_path: Path) -> None:
    settings = configmap_settings(tmp_path)
    deployment = resource("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    gateway = container()
    assert deployment["spec"]["replicas"] == 3
    assert gateway["args"][0] == "serve"

    # probes: the health endpoint's paths, on the port [metrics] listen opens
    assert settings.metrics.listen is not None
    for probe, meaning in (("readinessProbe", "readiness"), ("livenessProbe", "liveness")):
        check = gateway[probe]["httpGet"]
        assert HEALTH_PATHS.get(check["path"]) == meaning, check
        assert _container_port(check["port"]) == settings.metrics.listen[1]

    # the drain fits in the grace period: the preStop pause, then shutdown_grace
    pause = 0.0
    pre_stop = gateway.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command")
    if pre_stop:
        assert pre_stop[0] == "sleep", pre_stop
        pause = float(pre_stop[1])
    assert pod["terminationGracePeriodSeconds"] >= pause + settings.shutdown_grace + 5

    # the passive range is open on the container
    opened = {p["containerPort"] for p in gateway["ports"]}
    assert settings.passive.ports is not None and set(settings.passive.ports) <= opened

    # not root, no privileges; resources set
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert gateway["securityContext"]["allowPrivilegeEscalation"] is False
    assert gateway["resources"]["requests"] and gateway["resources"]["limits"]

    # the database URL comes from the Secret, under a key the Secret has
    secret = resource("Secret")
    env = {var["name"]: var for var in gateway["env"]}
    reference = env["GATEWAY_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert reference["name"] == secret["metadata"]["name"]
    assert reference["key"] in secret["stringData"]
    assert env["GATEWAY_PASSIVE_ADDRESS"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"
    # one pod per node: the passive ports of a node reach that node's pod
    anti = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert any(term["topologyKey"] == "kubernetes.io/hostname" for term in anti)


def test_service_carries_control_and_passive_ports(tmp_path: Path) -> None:
    settings = configmap_settings(tmp_path)
    service = resource("Service")
    spec = service["spec"]
    assert spec["type"] == "LoadBalancer" and spec["externalTrafficPolicy"] == "Local"
    pod_labels = resource("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert spec["selector"].items() <= pod_labels.items()
    annotations = service["metadata"]["annotations"]
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-proxy-protocol"] == "*"

    by_target = {_container_port(p["targetPort"]): p for p in spec["ports"]}
    assert all(listener.port in by_target for listener in settings.listeners)
    assert settings.passive.ports is not None
    for port in settings.passive.ports:
        entry = by_target.get(port)
        assert entry is not None, f"passive port {port} is not in the Service"
        # the same number on the balancer and on every node (the address announced)
        assert entry["port"] == entry["nodePort"] == port


def test_probe_paths_answer_on_the_health_endpoint() -> None:
    """The probes' paths on the gateway's own endpoint: ready, then draining."""
    health = Health()
    registry = CollectorRegistry()
    Counter("gateway_probe_check", "a counter to find in /metrics", registry=registry).inc()
    endpoint = serve_endpoint("127.0.0.1", 0, health, make_wsgi_app(registry))

    def get(path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{endpoint.port}{path}", timeout=10) as reply:
                return reply.status, reply.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    readiness = container()["readinessProbe"]["httpGet"]["path"]
    liveness = container()["livenessProbe"]["httpGet"]["path"]
    try:
        assert get(readiness) == (503, "starting\n")
        health.ready()
        assert get(readiness) == (200, "ready\n")
        assert get(liveness) == (200, "alive\n")
        health.drain()
        assert get(readiness) == (503, "draining\n")
        assert get(liveness) == (200, "alive\n")
        status, text = get("/metrics")  # the Prometheus text stays where it was
        assert status == 200 and "gateway_probe_check_total 1.0" in text
        health.stall_after = 0.0  # an event loop that stopped ticking
        status, text = get(liveness)
        assert status == 503 and text.startswith("event loop stalled"), text
    finally:
        endpoint.close()


def test_readme_shows_how_to_apply() -> None:
    text = (FOLDER / "README.md").read_text()
    assert "kubectl apply -k deploy/kubernetes" in text
    assert "docker build" in text
