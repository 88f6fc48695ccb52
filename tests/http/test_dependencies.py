"""A store going down: requests that need it get 503 DEPENDENCY_UNAVAILABLE quickly, the rest
keep working, readiness names it, and the same app recovers when it is back."""

from __future__ import annotations

from typing import Protocol

from core.testing import AppFactory, problem
from tests.support.servers import stopped


class Server(Protocol):
    def stop(self, timeout: float = 10.0) -> None: ...
    def start(self, timeout: float = 30.0) -> None: ...


FAST_TIMEOUTS = {
    "MONGODB_SERVER_SELECTION_TIMEOUT_MS": "500",
    "MONGODB_CONNECT_TIMEOUT_MS": "500",
    "POSTGRES_CONNECT_TIMEOUT": "1",
}


def test_mongodb_outage_is_503_then_recovers_without_restart(
    make_app: AppFactory, mongodb_server: Server
) -> None:
    client = make_app(FAST_TIMEOUTS).test_client()
    assert client.post("/public/probe/docs", json={"n": 1}).status_code == 201

    with stopped(mongodb_server):
        body = problem(
            client.post("/public/probe/docs", json={"n": 2}), 503, "DEPENDENCY_UNAVAILABLE"
        )
        assert body["detail"] == "mongodb is unavailable; retry shortly."
        assert client.get("/public/probe/sql").status_code == 200  # PostgreSQL still serves
        ready = client.get("/health/ready").get_json()
        assert ready["checks"]["mongodb"]["status"] == "error"
        assert ready["checks"]["postgres"]["status"] == "ok"

    assert client.post("/public/probe/docs", json={"n": 3}).status_code == 201
    assert client.get("/public/probe/docs").get_json() == {"count": 2}
    assert client.get("/health/ready").status_code == 200


def test_postgres_outage_is_503_then_recovers_without_restart(
    make_app: AppFactory, postgres_server: Server
) -> None:
    client = make_app(FAST_TIMEOUTS).test_client()
    assert client.get("/public/probe/sql").status_code == 200

    with stopped(postgres_server):
        body = problem(client.get("/public/probe/sql"), 503, "DEPENDENCY_UNAVAILABLE")
        assert body["detail"] == "postgres is unavailable; retry shortly."
        assert client.get("/public/probe/docs").status_code == 200  # MongoDB still serves
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.get_json()["checks"]["postgres"]["status"] == "error"

    # The pooled connection died with the server; the pool must heal by itself.
    for _ in range(3):
        response = client.get("/public/probe/sql")
        if response.status_code == 200:
            break
    assert response.status_code == 200
    assert response.get_json() == {"rows": [{"one": 1}]}
