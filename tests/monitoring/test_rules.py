"""k8s/monitoring as code: the alert rules pass ``promtool check rules`` and their unit tests
(``promtool test rules``, tests/monitoring/alerts.test.yaml), every alert is tested firing and
each test fails when its alert never fires; the custom resources are valid for the operator's
CRDs, the dashboard ConfigMap for Kubernetes; every runbook the alerts name exists."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.monitoring import (
    DASHBOARD,
    alerts,
    custom_resource_problems,
    dashboard_expressions,
    grouping_labels,
    one,
    problems,
    promtool,
    render,
    rules_file,
    selectors,
)

HERE = Path(__file__).parent
UNIT_TESTS = HERE / "alerts.test.yaml"
OPERATIONS = HERE.parents[1] / "docs" / "operations.md"


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return render()


@pytest.fixture(scope="module")
def rule(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return one(objects, "PrometheusRule")


def run_unit_tests(rule: dict[str, Any], folder: Path) -> tuple[int, str]:
    rules_file(rule, folder)
    shutil.copy(UNIT_TESTS, folder / UNIT_TESTS.name)
    result = promtool("test", "rules", UNIT_TESTS.name, cwd=folder)
    return result.returncode, result.stdout + result.stderr


def test_the_rules_pass_promtool_check(rule: dict[str, Any], tmp_path: Path) -> None:
    checked = promtool("check", "rules", str(rules_file(rule, tmp_path)))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{len(alerts(rule))} rules found" in checked.stdout


def test_every_alert_passes_its_unit_tests(rule: dict[str, Any], tmp_path: Path) -> None:
    code, output = run_unit_tests(rule, tmp_path)
    assert code == 0, output
    assert "SUCCESS" in output


def test_every_alert_is_tested_firing_and_its_test_fails_when_it_never_fires(
    rule: dict[str, Any], tmp_path: Path
) -> None:
    cases = yaml.safe_load(UNIT_TESTS.read_text())["tests"]
    fired = {
        case["alertname"]
        for test in cases
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    names = [alert["alert"] for alert in alerts(rule)]
    assert set(names) == fired, set(names) ^ fired

    for name in names:
        silenced = copy.deepcopy(rule)
        [target] = [a for a in alerts(silenced) if a["alert"] == name]
        target["expr"] = "vector(1) == 0"
        folder = tmp_path / name
        folder.mkdir()
        code, output = run_unit_tests(silenced, folder)
        assert code != 0, f"the unit tests pass with {name} never firing"
        assert f"alertname: {name}," in output


def test_every_alert_has_a_severity_a_summary_and_a_runbook_in_the_docs(
    rule: dict[str, Any],
) -> None:
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in OPERATIONS.read_text().splitlines()
        if line.startswith("#")
    }
    for alert in alerts(rule):
        assert alert["labels"]["severity"] in {"warning", "critical"}, alert["alert"]
        assert alert["annotations"]["summary"], alert["alert"]
        page, anchor = alert["annotations"]["runbook"].split("#")
        assert page == "docs/operations.md"
        assert anchor == alert["alert"].lower()
        assert anchor in headings, f"docs/operations.md has no section for {alert['alert']}"


def test_the_custom_resources_are_valid_for_the_operators_crds(
    objects: list[dict[str, Any]],
) -> None:
    for kind in ("ServiceMonitor", "PrometheusRule"):
        assert custom_resource_problems(one(objects, kind)) == [], kind


def test_the_crd_check_catches_a_misspelled_field_and_a_wrong_type(
    objects: list[dict[str, Any]],
) -> None:
    monitor = copy.deepcopy(one(objects, "ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["intervall"] = "30s"
    assert custom_resource_problems(monitor) == [
        "ServiceMonitor.spec.endpoints[0].intervall: unknown field"
    ]
    rule = copy.deepcopy(one(objects, "PrometheusRule"))
    rule["spec"]["groups"][0]["rules"][0]["for"] = 5
    [problem] = custom_resource_problems(rule)
    assert problem.startswith("spec.groups.0.rules.0.for")


def test_deploy_check_finds_nothing_wrong() -> None:
    assert problems() == []


def test_the_dashboard_ships_as_a_configmap_grafanas_sidecar_loads(
    objects: list[dict[str, Any]],
) -> None:
    config_map = one(objects, "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["grafana-dashboard.json"]) == json.loads(
        DASHBOARD.read_text()
    )
    namespaces = {obj["metadata"]["namespace"] for obj in objects}
    assert namespaces == {"python-base-04"}


def test_the_dashboard_has_unique_panels_and_its_variables() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "job", "namespace"} <= variables
    for expr in dashboard_expressions():
        assert selectors(expr), expr


def test_the_promql_reader_finds_metrics_matchers_and_groupings() -> None:
    expr = (
        'sum by (namespace, le) (rate(x_bucket{job="a", route!~"<u>|/h/.*"}[5m])) '
        "/ on (namespace) group_left (pod) max(y) > 0 and absent(z == 1)"
    )
    assert selectors(expr) == [
        ("x_bucket", [("job", "=", "a"), ("route", "!~", "<u>|/h/.*")]),
        ("y", []),
        ("z", []),
    ]
    assert grouping_labels(expr) == {"namespace", "le", "pod"}
