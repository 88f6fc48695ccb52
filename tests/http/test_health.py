"""Liveness and readiness against real servers: outages, hangs and draining."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from core.devstack import RedisServer
from core.devstack.redis import client_commands
from core.testing import AppFactory, manager_of, serving
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
    manager_of(app).drain(timeout=0)
    response = app.test_client().get("/health/ready")
    assert response.status_code == 503
    assert response.get_json()["reason"] == "shutting_down"


def test_a_readiness_flood_runs_each_store_check_once_per_ttl(
    make_app: AppFactory, redis_server: RedisServer
) -> None:
    app = make_app({"HEALTH_READY_CACHE_SECONDS": "30"})
    with serving(app) as url:

        def flood() -> list[requests.Response]:
            with ThreadPoolExecutor(max_workers=40) as pool:
                return list(
                    pool.map(lambda _: requests.get(f"{url}/health/ready", timeout=30), range(40))
                )

        answers: list[requests.Response] = []
        commands = client_commands(redis_server.url, lambda: answers.extend(flood()))
        live = client_commands(
            redis_server.url,
            lambda: [requests.get(f"{url}/health/live", timeout=10) for _ in range(10)],
        )

    assert [answer.status_code for answer in answers] == [200] * 40
    # Counted by Redis itself: one PING (the redis check) for 40 concurrent probes.
    assert commands.count("PING") == 1, commands
    # And every caller got that one run, for every store.
    assert len({json.dumps(answer.json()["checks"], sort_keys=True) for answer in answers}) == 1
    assert live.count("PING") == 0  # liveness checks nothing


def test_readiness_runs_again_once_the_shared_result_is_older_than_the_ttl(
    make_app: AppFactory, redis_server: RedisServer
) -> None:
    client = make_app({"HEALTH_READY_CACHE_SECONDS": "0.5"}).test_client()
    first = client_commands(redis_server.url, lambda: client.get("/health/ready"))
    cached = client_commands(redis_server.url, lambda: client.get("/health/ready"))
    time.sleep(0.6)
    again = client_commands(redis_server.url, lambda: client.get("/health/ready"))
    assert (first.count("PING"), cached.count("PING"), again.count("PING")) == (1, 0, 1)
