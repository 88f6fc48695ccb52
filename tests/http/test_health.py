"""Liveness and readiness against real servers: outages, hangs and draining."""

from __future__ import annotations

from core.devstack import RedisServer
from tests.conftest import AppFactory
from tests.support.servers import frozen, stopped


def test_live_checks_nothing_but_the_process(make_app: AppFactory) -> None:
    response = make_app().test_client().get("/health/live")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_ready_reports_every_dependency_with_latency(make_app: AppFactory) -> None:
    response = make_app().test_client().get("/health/ready")
    body = response.get_json()
    assert response.status_code == 200, body
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"mongodb", "postgres", "redis"}
    for check in body["checks"].values():
        assert check["status"] == "ok"
        assert isinstance(check["latency_ms"], float)


def test_ready_turns_503_when_redis_stops_and_200_when_it_is_back(
    make_app: AppFactory, redis_server: RedisServer
) -> None:
    client = make_app().test_client()
    assert client.get("/health/ready").status_code == 200

    with stopped(redis_server):
        down = client.get("/health/ready")
        body = down.get_json()
        assert down.status_code == 503
        assert body["status"] == "not_ready"
        assert body["checks"]["redis"]["status"] == "error"
        assert body["checks"]["redis"]["error"] == "ConnectionError"
        assert body["checks"]["mongodb"]["status"] == "ok"
        assert client.get("/health/live").status_code == 200

    back = client.get("/health/ready")
    assert back.status_code == 200, back.get_json()


def test_a_hung_dependency_times_out_without_hanging_the_probe(
    make_app: AppFactory, redis_server: RedisServer
) -> None:
    app = make_app({"HEALTH_CHECK_TIMEOUT": "0.3", "REDIS_SOCKET_TIMEOUT_MS": "20000"})
    client = app.test_client()
    assert client.get("/health/ready").status_code == 200
    with frozen(redis_server):
        response = client.get("/health/ready")
    body = response.get_json()
    assert response.status_code == 503
    assert body["checks"]["redis"] == {"status": "timeout", "latency_ms": 300.0}
    assert body["checks"]["postgres"]["status"] == "ok"


def test_ready_is_503_while_draining(make_app: AppFactory) -> None:
    app = make_app()
    app.extensions["app_manager"].drain(timeout=0)
    response = app.test_client().get("/health/ready")
    assert response.status_code == 503
    assert response.get_json()["reason"] == "shutting_down"
