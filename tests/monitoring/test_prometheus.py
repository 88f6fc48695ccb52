"""A real Prometheus (Debian's package) scrapes the app served by production gunicorn on its
METRICS_PORT, with the alert rules loaded: every metric, label and label value that the rules
and the dashboard select exists in what it scraped, every label they group or match by is on
those series, and every rule evaluates without error.

The target carries the labels the Prometheus Operator gives a ServiceMonitor's targets
(``job`` = the Service's name, ``namespace``, ``pod``), so the rules' selectors are exercised
as they are in a cluster. The traffic before the scrape makes every labelled series exist: a
5xx, a 401, a failed login, an action, a socket connect and event, 429s and a ban.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from core.devstack import free_port
from core.devstack.process import ChildProcess, NotReady
from core.testing.sockets import Client
from modules.auth.testing import PASSWORD
from tests.production.helpers import Gunicorn
from tests.support.monitoring import (
    INSTALL_HINT,
    alerts,
    dashboard_expressions,
    grouping_labels,
    one,
    render,
    rules_file,
    selectors,
)

JOB = "python-base-04"
TARGET_LABELS = {"namespace": "python-base-04", "pod": "python-base-04-7d9f-abcde"}
#: What Grafana puts in for the dashboard's variables.
VARIABLES = {"$job": JOB, "$namespace": TARGET_LABELS["namespace"], "$__rate_interval": "1m"}
#: Labels Prometheus itself adds (and ``le`` of histogram buckets).
SCRAPE_LABELS = {"job", "instance", *TARGET_LABELS}


class Prometheus:
    def __init__(self, folder: Path, target: str, rules: Path) -> None:
        binary = shutil.which("prometheus")
        assert binary, f"prometheus is missing: {INSTALL_HINT}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "scrape_configs": [
                {
                    "job_name": JOB,
                    "static_configs": [{"targets": [target], "labels": TARGET_LABELS}],
                }
            ],
        }
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.url = f"http://127.0.0.1:{free_port()}"
        self.child = ChildProcess(
            [
                binary,
                f"--config.file={folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address={self.url.removeprefix('http://')}",
            ],
            folder / "prometheus.log",
        ).start()
        try:
            self.child.wait_ready(
                lambda: requests.get(f"{self.url}/-/ready", timeout=2).ok, 60, "prometheus"
            )
        except NotReady as exc:
            raise AssertionError(f"{exc}\n{''.join(self.child.log_lines())}") from None

    def api(self, path: str, **params: Any) -> Any:
        response = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()["data"]

    def series(self, selector: str) -> list[dict[str, str]]:
        found: list[dict[str, str]] = self.api("series", **{"match[]": selector})
        return found

    def eventually(self, check: Callable[[], bool], what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, f"{what} within {timeout:g}s"
            time.sleep(0.5)


@pytest.fixture
def served(app_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[Gunicorn, int]]:
    metrics_port = free_port()
    env: dict[str, str | None] = {
        **app_env,
        "METRICS_PORT": str(metrics_port),
        "RATE_LIMIT_BAN_AFTER": "2",
        "TRUSTED_PROXIES": "1",  # the banned client's address is not the scraper's
    }
    server = Gunicorn(env, tmp_path / "gunicorn.log", ())
    try:
        server.wait_ready()
        yield server, metrics_port
    finally:
        server.stop()


@pytest.fixture
def prometheus(served: tuple[Gunicorn, int], tmp_path: Path) -> Iterator[Prometheus]:
    rule = one(render(), "PrometheusRule")
    rules = rules_file(rule, tmp_path)
    server = Prometheus(tmp_path, f"127.0.0.1:{served[1]}", rules)
    try:
        yield server
    finally:
        server.child.stop()


def make_every_series_exist(url: str) -> None:
    """Traffic after which every labelled series the rules and the dashboard use exists."""
    assert requests.get(f"{url}/public/probe/boom", timeout=10).status_code == 500
    assert requests.get(f"{url}/userauth/probe/private", timeout=10).status_code == 401
    uid = uuid.uuid4().hex[:8]
    email = f"p{uid}@example.com"
    body = {"email": email, "username": f"prom_{uid}", "password": PASSWORD}
    assert requests.post(f"{url}/public/register", json=body, timeout=10).status_code == 201
    wrong = {"email": email, "password": "not-the-password"}
    assert requests.post(f"{url}/public/login", json=wrong, timeout=10).status_code == 401
    right = {"email": email, "password": PASSWORD}
    tokens = requests.post(f"{url}/public/login", json=right, timeout=10).json()
    assert requests.post(f"{url}/actions/system.ping", json={}, timeout=10).status_code == 200

    client = Client()
    try:
        client.connect(url, tokens["access_token"])
        assert "rooms" in client.call("list_rooms", {})
    finally:
        client.close()

    # Last: 429s until the ban (RATE_LIMIT_BAN_AFTER=2), which shuts that client's address out
    # of both ports (Prometheus scrapes from its own).
    client_address = {"X-Forwarded-For": "203.0.113.7"}
    statuses = [
        requests.get(f"{url}/public/probe/limited", headers=client_address, timeout=10).status_code
        for _ in range(6)
    ]
    assert statuses[:2] == [200, 200]
    assert set(statuses[2:]) == {429}


def expressions(rule: dict[str, Any]) -> list[str]:
    found = [alert["expr"] for alert in alerts(rule)]
    for expr in dashboard_expressions():
        for variable, value in VARIABLES.items():
            expr = expr.replace(variable, value)
        found.append(expr)
    return found


def test_a_real_prometheus_finds_every_series_the_rules_and_the_dashboard_use(
    served: tuple[Gunicorn, int], prometheus: Prometheus
) -> None:
    server, _ = served
    make_every_series_exist(server.url)
    ban = 'security_events_total{event="ratelimit.ban"}'
    prometheus.eventually(lambda: bool(prometheus.series(ban)), "a scrape after the traffic")

    # The gunicorn hook told the metrics the worker's connection cap.
    [limit] = prometheus.api("query", query="socketio_connections_limit")["result"]
    assert float(limit["value"][1]) > 0
    assert limit["metric"]["pod"] == TARGET_LABELS["pod"]

    rule = one(render(), "PrometheusRule")
    missing: list[str] = []
    for expr in expressions(rule):
        labels: set[str] = set()
        for name, matchers in selectors(expr):
            text = ", ".join(f"{label}{op}{json.dumps(value)}" for label, op, value in matchers)
            selector = f"{name}{{{text}}}"
            found = prometheus.series(selector)
            if not found:
                missing.append(f"no series {selector}")
            labels |= {label for series in found for label in series}
        for label in grouping_labels(expr) - labels:
            missing.append(f"no label {label!r} on the series of: {' '.join(expr.split())}")
    assert not missing, "\n".join(missing)

    def every_rule_evaluated() -> bool:
        groups = prometheus.api("rules")["groups"]
        return all(r["lastEvaluation"] > "2000" for g in groups for r in g["rules"])

    prometheus.eventually(every_rule_evaluated, "every rule evaluated")
    evaluated = [r for g in prometheus.api("rules")["groups"] for r in g["rules"]]
    assert {r["name"] for r in evaluated} == {alert["alert"] for alert in alerts(rule)}
    assert [r for r in evaluated if r["health"] != "ok"] == []


def test_the_metric_reader_reports_a_misspelled_metric_and_label(
    served: tuple[Gunicorn, int], prometheus: Prometheus
) -> None:
    """The check above can fail: a typo in a metric, a label value or a grouping label."""
    prometheus.eventually(lambda: bool(prometheus.series("http_requests_total")), "a scrape")
    assert prometheus.series('http_request_total{job="python-base-04"}') == []
    assert prometheus.series('security_events_total{event="login.failure"}') == []
    found = prometheus.series("dependency_up")
    assert found
    assert all("dependency" in series and "dependencies" not in series for series in found)
