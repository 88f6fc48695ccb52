"""The Kubernetes manifests: each overlay rendered by ``kubectl kustomize``, every object
validated against the Kubernetes schemas, and the cross-references an operator would
otherwise find broken in a cluster (probe paths, ports, selectors, setting names, network
policy ports, the shutdown timing)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from flask import Flask

from config.settings import Settings
from tests.production.helpers import ROOT, gunicorn_config

K8S = ROOT / "k8s"
OVERLAYS = ("dev", "prod")
#: The oldest Kubernetes the manifests support, and the newest schemas we have.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.utils.latest_version())
STORE_PORTS = {"mongodb": 27017, "postgresql": 5432, "redis": 6379}
EXPECTED_KINDS = {
    "Namespace",
    "ServiceAccount",
    "ConfigMap",
    "Deployment",
    "Service",
    "Ingress",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "NetworkPolicy",
}


class Rendered:
    """The objects of one rendered overlay, looked up by kind."""

    def __init__(self, overlay: str, objects: list[dict[str, Any]]) -> None:
        self.overlay = overlay
        self.objects = objects

    def one(self, kind: str) -> dict[str, Any]:
        [found] = [obj for obj in self.objects if obj["kind"] == kind]
        return found

    @property
    def pod(self) -> dict[str, Any]:
        spec: dict[str, Any] = self.one("Deployment")["spec"]["template"]["spec"]
        return spec

    @property
    def container(self) -> dict[str, Any]:
        [container] = self.pod["containers"]
        return container

    @property
    def pod_labels(self) -> dict[str, str]:
        labels: dict[str, str] = self.one("Deployment")["spec"]["template"]["metadata"]["labels"]
        return labels

    @property
    def config(self) -> dict[str, str]:
        data: dict[str, str] = self.one("ConfigMap")["data"]
        return data

    def container_port(self, name: str) -> int:
        [port] = [p["containerPort"] for p in self.container["ports"] if p["name"] == name]
        return int(port)


def kustomize(path: Path, *options: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed to render the overlays (Debian package `kubectl`)"
    result = subprocess.run(
        [kubectl, "kustomize", *options, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [obj for obj in yaml.safe_load_all(result.stdout) if obj]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> Rendered:
    return Rendered(request.param, kustomize(K8S / "overlays" / request.param))


@pytest.fixture(scope="module")
def secret_template() -> dict[str, Any]:
    template: dict[str, Any] = yaml.safe_load((K8S / "secret.example.yaml").read_text())
    return template


@pytest.fixture(scope="module")
def service_monitor() -> dict[str, Any]:
    path = K8S / "monitoring" / "servicemonitor.yaml"
    monitor: dict[str, Any] = yaml.safe_load(path.read_text())
    return monitor


def sleep_seconds(container: dict[str, Any]) -> int:
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    return int(command[1])


# -- schemas ---------------------------------------------------------------------------------


def test_every_object_of_every_overlay_is_valid_kubernetes(
    rendered: Rendered, secret_template: dict[str, Any]
) -> None:
    assert {obj["kind"] for obj in rendered.objects} == EXPECTED_KINDS
    for version in K8S_VERSIONS:
        for obj in [*rendered.objects, secret_template]:
            kubernetes_validate.validate(obj, version, strict=True)


def test_the_schema_check_catches_a_misspelled_field(rendered: Rendered) -> None:
    deployment = rendered.one("Deployment")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[0], strict=True)


def test_everything_lives_in_the_overlays_namespace(rendered: Rendered) -> None:
    namespace = rendered.one("Namespace")["metadata"]["name"]
    for obj in rendered.objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == namespace, obj["kind"]


# -- the app and the image ---------------------------------------------------------------


def test_probes_hit_health_routes_that_exist_in_the_app(rendered: Rendered, app: Flask) -> None:
    routes = {rule.rule for rule in app.url_map.iter_rules()}
    container = rendered.container
    probes = {name: container[name] for name in ("startupProbe", "livenessProbe", "readinessProbe")}
    for probe in probes.values():
        assert probe["httpGet"]["path"] in routes
    # Liveness on HEALTH_PORT (answered beside the loop, core/http/liveness.py); the others on
    # the app's port, where they prove the app serves.
    assert probes["livenessProbe"]["httpGet"]["port"] == "health"
    assert probes["startupProbe"]["httpGet"]["port"] == "http"
    assert probes["readinessProbe"]["httpGet"]["port"] == "http"
    # Liveness checks only the process: a store outage must not restart pods.
    assert probes["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert probes["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    health_timeout = float(rendered.config.get("HEALTH_CHECK_TIMEOUT", "2"))
    assert probes["readinessProbe"]["timeoutSeconds"] > health_timeout


def test_ports_agree_between_settings_gunicorn_container_service_and_ingress(
    rendered: Rendered,
) -> None:
    config = rendered.config
    http, metrics = rendered.container_port("http"), rendered.container_port("metrics")
    assert http == int(config["PORT"])
    assert metrics == int(config["METRICS_PORT"])
    assert rendered.container_port("health") == int(config["HEALTH_PORT"])
    assert gunicorn_config(config)["bind"] == [f"{config['HOST']}:{http}"]

    service = rendered.one("Service")
    container_port_names = {port["name"] for port in rendered.container["ports"]}
    # every port but the kubelet's (HEALTH_PORT) is behind the Service
    assert {port["targetPort"] for port in service["spec"]["ports"]} == container_port_names - {
        "health"
    }
    backend = rendered.one("Ingress")["spec"]["rules"][0]["http"]["paths"][0]["backend"]
    assert backend["service"]["name"] == service["metadata"]["name"]
    assert backend["service"]["port"]["name"] in {port["name"] for port in service["spec"]["ports"]}


def test_selectors_match_the_pod_labels(
    rendered: Rendered, service_monitor: dict[str, Any]
) -> None:
    labels = rendered.pod_labels
    deployment = rendered.one("Deployment")

    def selects(selector: dict[str, str]) -> bool:
        return bool(selector) and selector.items() <= labels.items()

    assert selects(deployment["spec"]["selector"]["matchLabels"])
    assert selects(rendered.one("Service")["spec"]["selector"])
    assert selects(rendered.one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"])
    assert selects(rendered.one("NetworkPolicy")["spec"]["podSelector"]["matchLabels"])
    for constraint in rendered.pod["topologySpreadConstraints"]:
        assert selects(constraint["labelSelector"]["matchLabels"])
    target = rendered.one("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])

    service = rendered.one("Service")
    assert service_monitor["spec"]["selector"]["matchLabels"].items() <= (
        service["metadata"]["labels"].items()
    )
    service_ports = {port["name"] for port in service["spec"]["ports"]}
    assert {endpoint["port"] for endpoint in service_monitor["spec"]["endpoints"]} <= service_ports


def test_configuration_names_are_known_settings(
    rendered: Rendered, secret_template: dict[str, Any]
) -> None:
    known = set(Settings.env_names())
    assert set(rendered.config) <= known
    assert set(secret_template["stringData"]) <= known
    assert not set(rendered.config) & set(secret_template["stringData"])
    # Secrets never sit in the ConfigMap.
    secrets = {
        name.upper() for name in Settings.model_fields if Settings.field_flag(name, "secret")
    }
    assert not set(rendered.config) & secrets
    [source] = rendered.container["envFrom"]
    assert source["configMapRef"]["name"] == rendered.one("ConfigMap")["metadata"]["name"]
    Settings.model_validate({k.lower(): v for k, v in rendered.config.items()})


def test_secrets_and_the_vault_token_are_mounted_where_the_settings_look(
    rendered: Rendered,
) -> None:
    config = rendered.config
    mounts = {m["name"]: m["mountPath"] for m in rendered.container["volumeMounts"]}
    volumes = {v["name"]: v for v in rendered.pod["volumes"]}
    assert mounts["secrets"] == config["SECRETS_DIR"]
    assert volumes["secrets"]["secret"]["optional"] is True

    assert config["VAULT_AUTH_METHOD"] == "kubernetes"
    token_path = Path(config["VAULT_KUBERNETES_TOKEN_PATH"])
    [source] = volumes["vault-token"]["projected"]["sources"]
    assert token_path == Path(mounts["vault-token"]) / source["serviceAccountToken"]["path"]
    assert source["serviceAccountToken"]["audience"] == "vault"
    assert rendered.pod["serviceAccountName"] == rendered.one("ServiceAccount")["metadata"]["name"]


def test_the_pod_runs_as_the_images_non_root_user_on_a_read_only_root(rendered: Rendered) -> None:
    [image_user] = re.findall(r"^USER (\d+):\d+$", (ROOT / "Dockerfile").read_text(), re.M)
    pod, container = rendered.pod["securityContext"], rendered.container["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] == int(image_user)
    assert pod["seccompProfile"]["type"] == "RuntimeDefault"
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"]: m["name"] for m in rendered.container["volumeMounts"]}
    tmp = next(v for v in rendered.pod["volumes"] if v["name"] == mounts["/tmp"])
    assert "emptyDir" in tmp
    assert rendered.container["resources"]["requests"]
    assert rendered.container["resources"]["limits"]["memory"]
    image = rendered.container["image"]
    assert ":" in image.rsplit("/", 1)[-1]
    assert not image.endswith(":latest")


# -- traffic and shutdown ------------------------------------------------------------------


def test_the_grace_period_covers_the_pre_stop_pause_and_gunicorns_graceful_timeout(
    rendered: Rendered,
) -> None:
    graceful_timeout = gunicorn_config(rendered.config)["graceful_timeout"]
    pre_stop = sleep_seconds(rendered.container)
    assert pre_stop >= 5  # endpoints need a moment to drop the pod
    assert rendered.pod["terminationGracePeriodSeconds"] > pre_stop + graceful_timeout
    assert graceful_timeout > float(rendered.config["SHUTDOWN_TIMEOUT"])


def test_network_policy_allows_only_dns_the_stores_and_vault_out(rendered: Rendered) -> None:
    policy = rendered.one("NetworkPolicy")["spec"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    vault = urlsplit(rendered.config["VAULT_ADDR"])
    vault_port = vault.port or (443 if vault.scheme == "https" else 80)
    expected = {(53, "UDP"), (53, "TCP"), (vault_port, "TCP")}
    expected |= {(port, "TCP") for port in STORE_PORTS.values()}
    egress = {(p["port"], p["protocol"]) for rule in policy["egress"] for p in rule["ports"]}
    assert egress == expected
    for rule in policy["egress"]:
        assert rule["to"], "every egress rule names its destination"

    ports = {port["name"] for port in rendered.container["ports"]}
    ingress = [p["port"] for rule in policy["ingress"] for p in rule["ports"]]
    # every port is opened to its one source, but the kubelet's (from the node: no rule)
    assert sorted(ingress) == sorted(ports - {"health"})
    sources = {
        rule["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for rule in policy["ingress"]
    }
    assert sources == {"ingress-nginx", "monitoring"}


def test_ingress_passes_websockets_with_cookie_affinity(rendered: Rendered) -> None:
    ingress = rendered.one("Ingress")
    annotations = ingress["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert annotations[prefix + "proxy-http-version"] == "1.1"
    assert int(annotations[prefix + "proxy-read-timeout"]) >= 3600
    assert int(annotations[prefix + "proxy-send-timeout"]) >= 3600
    assert annotations[prefix + "affinity"] == "cookie"
    assert annotations[prefix + "session-cookie-name"]
    # One client address holds a bounded number of connections (issue 22): at least what
    # one pod admits of it, so the pod's own cap (not the ingress) answers first with 429.
    per_pod = Settings.model_fields["socketio_max_connections_per_ip"].default
    assert per_pod <= int(annotations[prefix + "limit-connections"]) <= 1000
    if rendered.overlay == "prod":
        assert annotations[prefix + "session-cookie-secure"] == "true"
        assert ingress["spec"]["tls"]


def test_prod_reaches_vault_over_https_verified_against_a_mounted_ca(rendered: Rendered) -> None:
    config = rendered.config
    if rendered.overlay != "prod":
        return  # the dev overlay may use the base's in-cluster http address
    assert urlsplit(config["VAULT_ADDR"]).scheme == "https"
    cacert = Path(config["VAULT_CACERT"])
    mounts = {m["name"]: m for m in rendered.container["volumeMounts"]}
    volumes = {v["name"]: v for v in rendered.pod["volumes"]}
    [name] = [n for n, m in mounts.items() if cacert.parent == Path(m["mountPath"])]
    assert mounts[name]["readOnly"] is True
    items = volumes[name]["configMap"]["items"]
    assert cacert.name in {item["path"] for item in items}
    assert volumes[name]["configMap"].get("optional") is not True  # no CA, no start


#: A worker's RSS after start-up, and what each socket it holds adds (bench/socket_capacity.py,
#: docs/performance.md "Socket capacity": 108 MiB and 64.7 KB measured, rounded up).
WORKER_BASE_MIB = 110
SOCKET_KIB = 65


def mebibytes(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    match = re.fullmatch(r"(\d+)([KMG]i)", quantity)
    assert match, f"memory quantity {quantity!r}: use Ki, Mi or Gi"
    return int(match[1]) * units[match[2]]


def test_the_memory_limit_holds_a_full_worker(rendered: Rendered) -> None:
    """A pod holding every socket gunicorn admits stays under its memory limit: raising
    worker_connections without the limit would have full pods killed (OOM) instead of
    answering 503 AT_CAPACITY."""
    worker_connections = gunicorn_config(rendered.config)["worker_connections"]
    reserve = Settings.model_fields["socketio_connection_reserve"].default
    full = WORKER_BASE_MIB + (worker_connections - reserve) * SOCKET_KIB / 1024
    limits = rendered.container["resources"]["limits"]
    assert mebibytes(limits["memory"]) > full, (limits, full)


def test_the_sockets_component_scales_before_a_pod_fills_up(tmp_path: Path) -> None:
    """k8s/components/hpa-sockets on the prod overlay: the HPA keeps its CPU target and adds
    pods at 80 % of the sockets a worker admits (the SocketsNearCapacity threshold)."""
    here = Path(os.path.relpath(K8S, tmp_path))
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "resources": [str(here / "overlays" / "prod")],
                "components": [str(here / "components" / "hpa-sockets")],
            }
        )
    )
    objects = kustomize(tmp_path, "--load-restrictor", "LoadRestrictionsNone")
    rendered = Rendered("prod", objects)
    hpa = rendered.one("HorizontalPodAutoscaler")
    metrics = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert metrics["Resource"]["resource"]["name"] == "cpu"
    sockets = metrics["Pods"]["pods"]
    assert sockets["metric"]["name"] == "socketio_connections"
    worker_connections = gunicorn_config(rendered.config)["worker_connections"]
    reserve = Settings.model_fields["socketio_connection_reserve"].default
    assert int(sockets["target"]["averageValue"]) <= 0.8 * (worker_connections - reserve)
    kubernetes_validate.validate(hpa, K8S_VERSIONS[0], strict=True)


def test_scaling_keeps_capacity_without_blocking_node_drains(rendered: Rendered) -> None:
    hpa = rendered.one("HorizontalPodAutoscaler")["spec"]
    pdb = rendered.one("PodDisruptionBudget")["spec"]
    replicas = rendered.one("Deployment")["spec"]["replicas"]
    assert hpa["minReplicas"] <= replicas <= hpa["maxReplicas"]
    assert pdb.get("maxUnavailable", 0) >= 1 or pdb["minAvailable"] < hpa["minReplicas"]
    if rendered.overlay == "prod":
        assert hpa["minReplicas"] >= 2


def test_every_manifest_is_rendered_by_a_kustomization_or_a_documented_extra() -> None:
    extras = {K8S / "secret.example.yaml"}
    used: set[Path] = set()
    for kustomization in K8S.rglob("kustomization.yaml"):
        spec = yaml.safe_load(kustomization.read_text())
        files = [
            *spec.get("resources", []),
            *(p["path"] for p in spec.get("patches", []) if "path" in p),
        ]
        used |= {(kustomization.parent / name).resolve() for name in files}
        used.add(kustomization.resolve())
    stray = {p.resolve() for p in K8S.rglob("*.yaml")} - used - {p.resolve() for p in extras}
    assert not stray, f"YAML files no kustomization uses: {sorted(map(str, stray))}"
