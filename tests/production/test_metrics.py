"""Metrics after real requests: route templates, statuses, latency, exceptions, auth failures,
dependencies, the API features use, and /metrics protection (on the app's port and on
METRICS_PORT)."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable

import prometheus_client
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis

from core.devstack import RedisServer, free_port
from core.errors import ConfigurationError, StartupError
from core.managers.metrics import MAX_LABEL_VALUES, OTHER, MetricsManager
from core.testing import manager_of, problem, serving
from tests.production.helpers import sample, samples
from tests.support.servers import stopped

AppFactory = Callable[..., Flask]
TOKEN = "metrics-token-0123456789"
#: Long enough for prod (32 bytes at least).
PROD = "prod-metrics-token-0123456789abcdef0123"


def scrape(client: FlaskClient, token: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain")
    text = response.get_data(as_text=True)
    response.close()  # sent: no longer in flight (as the server closes it)
    return text


def test_requests_are_counted_by_route_template_never_by_raw_path(client: FlaskClient) -> None:
    for item_id in ("a1", "b2", "c3"):
        assert client.get(f"/public/metered/items/{item_id}").status_code == 200
    assert client.get("/no/such/page-7f3a").status_code == 404

    text = scrape(client)
    route = "/public/metered/items/<item_id>"
    ok = {"method": "GET", "route": route, "status": "200"}
    assert sample(text, "http_requests_total", **ok) == 3
    assert sample(text, "http_request_duration_seconds_count", **ok) == 3
    unmatched = {"method": "GET", "route": "<unmatched>", "status": "404"}
    assert sample(text, "http_requests_total", **unmatched) == 1
    for raw in ("a1", "b2", "c3", "page-7f3a"):
        assert raw not in text


def test_latency_lands_in_the_right_histogram_buckets(client: FlaskClient) -> None:
    assert client.get("/public/probe/slow?seconds=0.3").status_code == 200

    text = scrape(client)
    labels = {"method": "GET", "route": "/public/probe/slow", "status": "200"}
    bucket = "http_request_duration_seconds_bucket"
    assert sample(text, bucket, **labels, le="0.25") == 0
    assert sample(text, bucket, **labels, le="0.5") == 1
    total = sample(text, "http_request_duration_seconds_sum", **labels)
    assert total is not None
    assert 0.3 <= total < 0.5


def test_request_metrics_read_as_prometheus_client_metrics_in_both_formats(
    client: FlaskClient,
) -> None:
    """The request metrics are kept in plain counters (docs/decisions.md): a scrape shows a
    counter, a histogram and a gauge with their ``_created`` series, in both formats."""
    for seconds in ("0", "0.3"):
        assert client.get(f"/public/probe/slow?seconds={seconds}").status_code == 200
    labels = {"method": "GET", "route": "/public/probe/slow", "status": "200"}

    text = scrape(client)
    assert "# TYPE http_requests_total counter" in text
    assert "# TYPE http_request_duration_seconds histogram" in text
    assert "# TYPE http_requests_in_flight gauge" in text
    assert sample(text, "http_requests_total", **labels) == 2
    created = sample(text, "http_requests_created", **labels)
    assert created is not None
    assert created == sample(text, "http_request_duration_seconds_created", **labels)
    buckets = [
        sample(text, "http_request_duration_seconds_bucket", **labels, le=le)
        for le in ("0.25", "+Inf")
    ]
    assert buckets == [1, 2]  # cumulative: +Inf is the count
    assert sample(text, "http_request_duration_seconds_count", **labels) == 2

    response = client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert response.content_type.startswith("application/openmetrics-text")
    open_metrics = response.get_data(as_text=True)
    assert "# TYPE http_requests counter" in open_metrics
    assert sample(open_metrics, "http_requests_total", **labels) == 2
    assert sample(open_metrics, "http_requests_created", **labels) == created
    assert sample(open_metrics, "http_request_duration_seconds_count", **labels) == 2


def test_request_metrics_leave_out_created_series_when_prometheus_client_does(
    client: FlaskClient,
) -> None:
    """``PROMETHEUS_DISABLE_CREATED_SERIES`` (read by prometheus_client at import) holds for
    the request metrics as for prometheus_client's own."""
    assert client.get("/public/metered/items/c1").status_code == 200
    labels = {"method": "GET", "route": "/public/metered/items/<item_id>", "status": "200"}
    prometheus_client.disable_created_metrics()
    try:
        text = scrape(client)
    finally:
        prometheus_client.enable_created_metrics()
    assert sample(text, "http_requests_total", **labels) == 1
    assert "http_requests_created" not in text
    assert "http_request_duration_seconds_created" not in text
    assert sample(scrape(client), "http_requests_created", **labels) is not None


def test_the_request_metrics_names_cannot_be_defined_again(app: Flask) -> None:
    metrics: MetricsManager = manager_of(app).metrics
    for name in ("http_requests_total", "http_request_duration_seconds"):
        with pytest.raises(ValueError, match="Duplicated"):
            metrics.counter(name, "again", ("method", "route", "status"))
    with pytest.raises(ValueError, match="Duplicated"):
        metrics.gauge("http_requests_in_flight", "again")


def test_in_flight_gauge_counts_the_scrape_itself_and_nothing_left_over(
    client: FlaskClient,
) -> None:
    # A request is in flight until the server closes its response (after sending it), as
    # gunicorn does for every response; the test client leaves closing to its caller.
    for _ in range(3):
        client.get("/public/metered/items/x").close()
    client.get("/public/probe/boom").close()
    client.get("/userauth/probe/private").close()  # 401 raised before any view runs

    assert sample(scrape(client), "http_requests_in_flight") == 1


def test_in_flight_gauge_is_the_count_the_drain_waits_for(client: FlaskClient) -> None:
    """One count for both: a response not yet closed (still being sent) is in flight for
    the gauge as for the drain on SIGTERM."""
    lifecycle = manager_of(client.application).lifecycle
    sending = client.get("/public/metered/items/x")
    assert lifecycle.in_flight == 1

    assert sample(scrape(client), "http_requests_in_flight") == 2  # it and the scrape
    sending.close()
    assert lifecycle.in_flight == 0
    assert sample(scrape(client), "http_requests_in_flight") == 1


def test_unexpected_exceptions_are_counted_by_route_and_type(client: FlaskClient) -> None:
    problem(client.get("/public/metered/broken/42"), 500, "INTERNAL_ERROR")
    problem(client.get("/public/probe/boom"), 500, "INTERNAL_ERROR")

    text = scrape(client)
    exceptions = "http_exceptions_total"
    assert (
        sample(text, exceptions, route="/public/metered/broken/<item_id>", exception="LookupError")
        == 1
    )
    assert sample(text, exceptions, route="/public/probe/boom", exception="RuntimeError") == 1
    assert (
        sample(text, "http_requests_total", method="GET", route="/public/probe/boom", status="500")
        == 1
    )


def test_auth_failures_are_counted_by_policy_and_problem_code(client: FlaskClient) -> None:
    client.get("/userauth/probe/private")
    client.get("/userauth/probe/private", headers={"Authorization": "Bearer not-a-jwt"})
    client.get("/keyauth/probe/private")
    client.delete("/userauth/api-keys/abc123")

    text = scrape(client)
    assert sample(text, "auth_failures_total", policy="jwt", code="AUTH_REQUIRED") == 2
    assert sample(text, "auth_failures_total", policy="jwt", code="TOKEN_INVALID") == 1
    assert sample(text, "auth_failures_total", policy="api_key", code="API_KEY_REQUIRED") == 1
    route = "/userauth/api-keys/<key_id>"
    assert sample(text, "http_requests_total", method="DELETE", route=route, status="401") == 1


def test_unknown_methods_are_one_label_value(client: FlaskClient) -> None:
    client.open("/public/metered/items/x", method="BREW")
    client.open("/public/metered/items/x", method="PROPFIND")

    methods = {labels["method"] for labels in samples(scrape(client), "http_requests_total")}
    assert "OTHER" in methods
    assert not methods & {"BREW", "PROPFIND"}


def test_dependency_gauges_come_from_the_readiness_checks(
    make_app: AppFactory, redis_server: RedisServer
) -> None:
    text = scrape(make_app().test_client())
    for name in ("mongodb", "postgres", "redis"):
        assert sample(text, "dependency_up", dependency=name) == 1
        latency = sample(text, "dependency_latency_seconds", dependency=name)
        assert latency is not None
        assert 0 < latency < 2

    client = make_app().test_client()
    with stopped(redis_server):
        text = scrape(client)
    assert sample(text, "dependency_up", dependency="redis") == 0
    assert sample(text, "dependency_up", dependency="mongodb") == 1


def test_readiness_and_redis_memory_gauges_follow_the_shared_readiness_run(
    make_app: AppFactory, redis_server: RedisServer
) -> None:
    app = make_app({"HEALTH_READY_CACHE_SECONDS": "0"})
    client = app.test_client()
    redis = Redis.from_url(redis_server.url)
    before = redis.config_get("maxmemory")["maxmemory"]
    redis.config_set("maxmemory", str(8 * 2**30))
    try:
        text = scrape(client)
    finally:
        redis.config_set("maxmemory", before)
    assert sample(text, "health_ready") == 1
    assert sample(text, "redis_memory_max_bytes") == 8 * 2**30
    used = sample(text, "redis_memory_used_bytes")
    assert used is not None
    assert used > 0
    # Kept for the metrics, never in the public readiness answer.
    assert "memory" not in json.dumps(client.get("/health/ready").get_json())

    manager_of(app).drain(timeout=0)
    assert sample(scrape(client), "health_ready") == 0
    assert client.get("/health/ready").status_code == 503
    with stopped(redis_server):
        assert sample(scrape(client), "health_ready") == 0


def test_metrics_is_open_without_a_token_and_protected_with_one(make_app: AppFactory) -> None:
    assert make_app().test_client().get("/metrics").status_code == 200

    client = make_app({"METRICS_TOKEN": TOKEN}).test_client()
    problem(client.get("/metrics"), 401, "AUTH_REQUIRED")
    problem(client.get("/metrics", headers={"Authorization": "Bearer wrong"}), 401, "AUTH_REQUIRED")
    problem(client.get("/metrics", headers={"Authorization": TOKEN}), 401, "AUTH_REQUIRED")
    assert "http_requests_total" in scrape(client, TOKEN)


def test_metrics_port_serves_the_registry_instead_of_the_app_route(make_app: AppFactory) -> None:
    port = free_port()
    app = make_app({"METRICS_PORT": str(port), "METRICS_TOKEN": TOKEN})
    client = app.test_client()
    assert client.get("/public/metered/items/q").status_code == 200
    problem(client.get("/metrics"), 404, "NOT_FOUND")

    url = f"http://127.0.0.1:{port}/metrics"
    assert requests.get(url, timeout=5).status_code == 401
    wrong = requests.get(url, headers={"Authorization": "Bearer nope"}, timeout=5)
    assert wrong.status_code == 401
    assert wrong.json()["code"] == "AUTH_REQUIRED"
    # every answer carries a request id, in the problem body too, as on the app's port
    assert wrong.json()["request_id"] == wrong.headers["X-Request-ID"]
    assert len(wrong.headers["X-Request-ID"]) == 32
    other = requests.get(
        url.replace("/metrics", "/other"), headers={"X-Request-ID": "scrape-1"}, timeout=5
    )
    assert other.status_code == 404
    assert other.headers["X-Request-ID"] == other.json()["request_id"] == "scrape-1"
    response = requests.get(
        url, headers={"Authorization": f"Bearer {TOKEN}", "X-Request-ID": "scrape-2"}, timeout=5
    )
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "scrape-2"
    route = "/public/metered/items/<item_id>"
    assert (
        sample(response.text, "http_requests_total", method="GET", route=route, status="200") == 1
    )

    manager_of(app).close()
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=2)


def test_a_busy_metrics_port_stops_start_up_naming_the_setting(make_app: AppFactory) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(StartupError, match="METRICS_PORT"):
            make_app({"METRICS_PORT": str(port)})


def test_apps_in_one_process_have_separate_registries(make_app: AppFactory) -> None:
    first, second = make_app(), make_app()
    manager_of(first).metrics.counter("jobs_total", "Jobs", ("kind",)).labels("a").inc(5)
    manager_of(second).metrics.counter("jobs_total", "Jobs", ("kind",)).labels("a").inc()

    assert sample(scrape(first.test_client()), "jobs_total", kind="a") == 5
    assert sample(scrape(second.test_client()), "jobs_total", kind="a") == 1


def test_defining_a_metric_twice_returns_it_and_a_conflict_is_refused(app: Flask) -> None:
    metrics: MetricsManager = manager_of(app).metrics
    jobs = metrics.counter("jobs_total", "Jobs", ("kind",))
    assert metrics.counter("jobs_total", "Jobs", ("kind",)) is jobs
    assert metrics.histogram("job_seconds", "Job time") is metrics.histogram("job_seconds", "x")
    with pytest.raises(ValueError, match="jobs_total"):
        metrics.counter("jobs_total", "Jobs", ("queue",))
    with pytest.raises(ValueError, match="job_seconds"):
        metrics.gauge("job_seconds", "Job time")


def test_feature_hooks_record_limits_sockets_and_actions(app: Flask) -> None:
    metrics: MetricsManager = manager_of(app).metrics
    metrics.rate_limit_rejected("ip")
    metrics.rate_limit_rejected("ip", "ban")
    metrics.ban_issued("user")
    metrics.socket_connected()
    metrics.socket_connected()
    metrics.socket_disconnected()
    metrics.socket_refused("TOKEN_EXPIRED")
    metrics.socket_event("send_message", "ok", 0.002)
    metrics.socket_event("join_room", "FORBIDDEN")
    metrics.action_finished("system.ping", "ok", 0.001)
    metrics.audit_dropped(3)

    text = scrape(app.test_client())
    assert sample(text, "rate_limit_rejections_total", level="ip", reason="limit") == 1
    assert sample(text, "rate_limit_rejections_total", level="ip", reason="ban") == 1
    assert sample(text, "rate_limit_bans_total", level="user") == 1
    assert sample(text, "socketio_connections") == 1
    assert sample(text, "socketio_connects_total", outcome="accepted") == 2
    assert sample(text, "socketio_connects_total", outcome="TOKEN_EXPIRED") == 1
    assert sample(text, "socketio_events_total", event="send_message", outcome="ok") == 1
    assert sample(text, "socketio_events_total", event="join_room", outcome="FORBIDDEN") == 1
    assert sample(text, "socketio_event_duration_seconds_count", event="send_message") == 1
    assert sample(text, "actions_total", action="system.ping", outcome="ok") == 1
    assert sample(text, "action_duration_seconds_count", action="system.ping") == 1
    assert sample(text, "audit_rows_dropped_total") == 3


def test_free_form_label_values_are_capped(app: Flask) -> None:
    metrics: MetricsManager = manager_of(app).metrics
    for n in range(MAX_LABEL_VALUES + 25):
        metrics.socket_event(f"event_{n}")

    events = {
        labels["event"] for labels in samples(scrape(app.test_client()), "socketio_events_total")
    }
    assert len(events) == MAX_LABEL_VALUES + 1
    assert OTHER in events
    assert "event_0" in events
    assert f"event_{MAX_LABEL_VALUES}" not in events


def test_operator_routes_are_never_open_on_the_apps_port_in_prod_or_beside_a_metrics_port(
    make_app: AppFactory,
) -> None:
    """The ingress routes every path of the app's port: an attacker reads /metrics and
    /modules/status there unless they are closed. Without METRICS_TOKEN they are open only in
    development on the app's port."""
    prod = make_app({"APP_ENV": "prod"})
    with serving(prod) as url:
        for path in ("/metrics", "/modules/status"):
            problem_of(requests.get(f"{url}{path}", timeout=10), 401, "AUTH_REQUIRED")

    metrics_port = free_port()
    beside = make_app({"APP_ENV": "prod", "METRICS_PORT": str(metrics_port), "METRICS_TOKEN": PROD})
    with serving(beside) as url:
        assert requests.get(f"{url}/metrics", timeout=10).status_code == 404  # not on this port
        problem_of(requests.get(f"{url}/modules/status", timeout=10), 401, "AUTH_REQUIRED")
    scraped_url = f"http://127.0.0.1:{metrics_port}/metrics"
    problem_of(requests.get(scraped_url, timeout=10), 401, "AUTH_REQUIRED")  # the token too
    scraped = requests.get(scraped_url, headers={"Authorization": f"Bearer {PROD}"}, timeout=10)
    assert scraped.status_code == 200
    assert "http_requests_total" in scraped.text

    with serving(make_app({"APP_ENV": "prod", "METRICS_TOKEN": PROD})) as url:
        token = {"Authorization": f"Bearer {PROD}"}
        assert requests.get(f"{url}/modules/status", headers=token, timeout=10).status_code == 200
        assert requests.get(f"{url}/metrics", headers=token, timeout=10).status_code == 200

    dev = make_app({"APP_ENV": "dev"}).test_client()  # development convenience stays
    assert dev.get("/modules/status").status_code == 200


def problem_of(response: requests.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == code


def test_prod_refuses_a_short_metrics_token_and_a_metrics_port_without_one(
    make_app: AppFactory,
) -> None:
    with pytest.raises(ConfigurationError) as short:
        make_app({"APP_ENV": "prod", "METRICS_TOKEN": "metrics-token-0123456789"}, start=False)
    assert short.value.problems == [
        "METRICS_TOKEN must be at least 32 bytes in prod (e.g. python -c 'import secrets; "
        "print(secrets.token_urlsafe(32))')"
    ]
    assert "metrics-token-0123456789" not in str(short.value)
    with pytest.raises(ConfigurationError) as open_port:
        make_app({"APP_ENV": "prod", "METRICS_PORT": str(free_port())}, start=False)
    assert [p.split(":")[0] for p in open_port.value.problems] == [
        "METRICS_TOKEN is required in prod with METRICS_PORT"
    ]


def guess(url: str, count: int, **headers: str) -> list[str]:
    """``count`` wrong tokens at ``url``: the code of each answer."""
    codes = []
    with requests.Session() as session:
        for i in range(count):
            answer = session.get(
                url, headers={"Authorization": f"Bearer guess-{i:04d}", **headers}, timeout=10
            )
            assert answer.status_code in (401, 429), answer.text
            codes.append(answer.json()["code"])
    return codes


def assert_limited_then_banned(codes: list[str], allowance: int) -> None:
    """At most ``allowance`` tokens were compared, then the address was limited and banned."""
    assert codes[:allowance] == ["AUTH_REQUIRED"] * allowance
    assert "AUTH_REQUIRED" not in codes[allowance:]
    assert "RATE_LIMITED" in codes
    assert codes[-1] == "BANNED"


GUESSING = {"METRICS_TOKEN": PROD, "RATE_LIMIT_IP": "20/minute", "RATE_LIMIT_BAN_AFTER": "10"}


def test_guessing_the_metrics_token_on_the_apps_port_is_limited_and_banned(
    make_app: AppFactory,
) -> None:
    app = make_app({**GUESSING, "TRUSTED_PROXIES": "1"})
    with serving(app) as url:
        attacker = {"X-Forwarded-For": "203.0.113.50"}
        assert_limited_then_banned(guess(f"{url}/metrics", 300, **attacker), 20)
        # Banned: even the right token is refused from that address (no oracle)...
        right = {"Authorization": f"Bearer {PROD}"}
        refused = requests.get(f"{url}/metrics", headers={**right, **attacker}, timeout=10)
        problem_of(refused, 429, "BANNED")
        assert int(refused.headers["Retry-After"]) >= 1
        # ...while Prometheus, from its own address, scrapes on.
        scraper = {**right, "X-Forwarded-For": "10.0.0.9"}
        assert requests.get(f"{url}/metrics", headers=scraper, timeout=10).status_code == 200
        text = requests.get(f"{url}/metrics", headers=scraper, timeout=10).text
    assert sample(text, "security_events_total", event="ratelimit.ban", outcome="denied") == 1


def test_guessing_the_metrics_token_on_the_metrics_port_is_limited_and_banned(
    make_app: AppFactory,
) -> None:
    port = free_port()
    make_app({**GUESSING, "METRICS_PORT": str(port)})
    url = f"http://127.0.0.1:{port}/metrics"
    assert_limited_then_banned(guess(url, 300), 20)
    refused = requests.get(url, headers={"Authorization": f"Bearer {PROD}"}, timeout=10)
    problem_of(refused, 429, "BANNED")
    assert int(refused.headers["Retry-After"]) >= 1


def test_the_metrics_port_is_admitted_by_the_apps_admission(make_app: AppFactory) -> None:
    """One admission function and one budget per address for both ports: scrapes go on during
    maintenance, as on the app's ``/metrics``, and a ban earned on the app's port refuses the
    metrics port too, the right token changing nothing."""
    port = free_port()
    app = make_app({**GUESSING, "METRICS_PORT": str(port)})
    url = f"http://127.0.0.1:{port}/metrics"
    right = {"Authorization": f"Bearer {PROD}"}
    for switch in ("on", "off"):
        result = app.test_cli_runner().invoke(args=["maintenance", switch])
        assert result.exit_code == 0, result.output
        assert requests.get(url, headers=right, timeout=10).status_code == 200

    client = app.test_client()  # from 127.0.0.1, as the scrapes
    wrong = {"Authorization": "Bearer wrong"}
    codes = [client.get("/modules/status", headers=wrong).get_json()["code"] for _ in range(300)]
    assert codes[-1] == "BANNED", codes[-5:]
    problem_of(requests.get(url, headers=right, timeout=10), 429, "BANNED")
