"""k8s/monitoring checked offline: the ServiceMonitor and the PrometheusRule against the
Prometheus Operator's own models of its CRDs, the dashboard ConfigMap against the Kubernetes
schemas, the rules with ``promtool check rules``. ``make deploy-check`` runs it
(``python -m tests.support.monitoring``); tests/monitoring uses the same functions.

kubernetes-validate knows only Kubernetes' own kinds. The operator's kinds are checked with
``cloudcoil.models.prometheus_operator`` (pydantic models generated from the operator's
CRDs): a wrong type fails validation, and an unknown field, which pydantic would drop, shows
up as a difference when the validated object is dumped again.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "k8s" / "monitoring"
DASHBOARD = MONITORING / "grafana-dashboard.json"
#: The oldest Kubernetes the manifests support (as the overlays' check).
K8S_VERSION = "1.30.0"
INSTALL_HINT = "install Debian's prometheus package (make test-deps does)"


def render() -> list[dict[str, Any]]:
    """``kubectl kustomize k8s/monitoring``: the objects."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise RuntimeError("kubectl is needed to render k8s/monitoring (Debian package `kubectl`)")
    result = subprocess.run(
        [kubectl, "kustomize", str(MONITORING)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr)
    return [obj for obj in yaml.safe_load_all(result.stdout) if obj]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [found] = [obj for obj in objects if obj["kind"] == kind]
    return found


def custom_resource_problems(obj: dict[str, Any]) -> list[str]:
    """What the operator's CRD schema refuses in ``obj`` (a ServiceMonitor or PrometheusRule)."""
    import pydantic
    from cloudcoil.models.prometheus_operator import v1

    model = {"ServiceMonitor": v1.ServiceMonitor, "PrometheusRule": v1.PrometheusRule}[obj["kind"]]
    try:
        validated = model.model_validate(obj)
    except pydantic.ValidationError as exc:
        return [
            f"{'.'.join(map(str, error['loc']))}: {error['msg']}"
            for error in exc.errors(include_url=False)
        ]
    dumped = validated.model_dump(by_alias=True, exclude_unset=True, mode="json")
    return [f"{path}: unknown field" for path in _dropped(obj, dumped, obj["kind"])]


def _dropped(given: Any, kept: Any, path: str) -> Iterator[str]:
    """The paths present in ``given`` but not in ``kept`` (what validation threw away)."""
    if isinstance(given, dict) and isinstance(kept, dict):
        for key, value in given.items():
            if key not in kept:
                yield f"{path}.{key}"
            else:
                yield from _dropped(value, kept[key], f"{path}.{key}")
    elif isinstance(given, list) and isinstance(kept, list):
        for index, (value, other) in enumerate(zip(given, kept, strict=False)):
            yield from _dropped(value, other, f"{path}[{index}]")


def rules_file(rule: dict[str, Any], folder: Path) -> Path:
    """The PrometheusRule's groups as a Prometheus rule file (what the operator generates)."""
    path = folder / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))
    return path


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        raise RuntimeError(f"promtool is missing: {INSTALL_HINT}")
    return subprocess.run(
        [binary, *args], capture_output=True, text=True, timeout=120, check=False, cwd=cwd
    )


def alerts(rule: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for group in rule["spec"]["groups"] for r in group["rules"] if "alert" in r]


def problems() -> list[str]:
    """Everything wrong with k8s/monitoring, as lines; empty when it is deployable."""
    found: list[str] = []
    objects = render()
    kinds = sorted(obj["kind"] for obj in objects)
    if kinds != ["ConfigMap", "PrometheusRule", "ServiceMonitor"]:
        found.append(f"k8s/monitoring renders {kinds}")
    for obj in objects:
        where = f"{obj['kind']} {obj['metadata']['name']}"
        if obj["kind"] in ("ServiceMonitor", "PrometheusRule"):
            found += [f"{where}: {problem}" for problem in custom_resource_problems(obj)]
        else:
            try:
                kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                found.append(f"{where}: {exc.message}")
    dashboard = one(objects, "ConfigMap")["data"]["grafana-dashboard.json"]
    try:
        json.loads(dashboard)
    except ValueError as exc:
        found.append(f"grafana-dashboard.json: {exc}")
    with tempfile.TemporaryDirectory() as folder:
        rules = rules_file(one(objects, "PrometheusRule"), Path(folder))
        checked = promtool("check", "rules", str(rules))
        if checked.returncode != 0:
            found.append(f"promtool check rules: {checked.stdout}{checked.stderr}".strip())
    return found


# -- reading PromQL ----------------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_GROUPING = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", re.IGNORECASE
)
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*(\{[^}]*\})|([a-zA-Z_:][a-zA-Z0-9_:]*)")
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*")')
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
     "group_right", "inf", "nan"}
)  # fmt: skip
_DURATION = re.compile(r"\[[^\]]*\]")


def selectors(expr: str) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """The vector selectors of a PromQL expression: ``(metric, [(label, op, value), ...])``.

    A reader for expressions written in this repository (no ``@`` modifiers, no metric name
    inside the braces): identifiers followed by ``(`` are functions, the rest are metrics.
    """
    found = []
    text = _DURATION.sub("", _GROUPING.sub(" ", expr))
    strings: list[str] = []

    def hide(match: re.Match[str]) -> str:
        strings.append(match.group(0))
        return f"\x00{len(strings) - 1}\x00"

    text = _STRING.sub(hide, text)
    for match in _SELECTOR.finditer(text):
        name = match.group(1) or match.group(3)
        braces = match.group(2)
        if name is None or name.lower() in _KEYWORDS or re.fullmatch(r"[0-9.e]+", name):
            continue
        if braces is None and text[match.end() :].lstrip().startswith("("):
            continue  # a function or aggregation
        matchers = []
        if braces:
            restored = re.sub(r"\x00(\d+)\x00", lambda m: strings[int(m.group(1))], braces)
            matchers = [
                (label, op, json.loads(value)) for label, op, value in _MATCHER.findall(restored)
            ]
        found.append((name, matchers))
    return found


def grouping_labels(expr: str) -> set[str]:
    """Labels named in ``by (...)``, ``on (...)`` and the like."""
    return {
        label.strip()
        for _, labels in _GROUPING.findall(_STRING.sub('""', expr))
        for label in labels.split(",")
        if label.strip()
    }


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        target["expr"]
        for panel in dashboard["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]


def main() -> int:
    try:
        found = problems()
    except RuntimeError as exc:
        found = [str(exc)]
    print("k8s/monitoring")
    for line in found:
        print(f"  {line}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
