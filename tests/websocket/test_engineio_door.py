"""The Engine.IO door on the threaded server (the gunicorn flood is in
tests/production/test_socket_flood.py): polling openings are capped per address and count at
the ``ip`` level, refusals are problem documents (whatever failed: the one error mapper), slots
come back when engine.io closes."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import requests
from redis import Redis

from core.devstack import RedisServer
from core.testing import manager_of
from tests.support.servers import stopped, wait_until

Serve = Callable[..., tuple[Any, str]]


def polling_opening(
    url: str, address: str = "192.0.2.1", request_id: str | None = None
) -> requests.Response:
    headers = {"X-Forwarded-For": address}
    if request_id is not None:
        headers["X-Request-ID"] = request_id
    return requests.get(f"{url}/socket.io/?EIO=4&transport=polling", headers=headers, timeout=10)


@contextmanager
def app_log() -> Iterator[list[dict[str, Any]]]:
    """The app's JSON log lines written in the block (filled in when it ends)."""
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "python-base-04")
    assert isinstance(handler, logging.StreamHandler)
    output = io.StringIO()
    previous = handler.setStream(output)
    lines: list[dict[str, Any]] = []
    try:
        yield lines
    finally:
        handler.setStream(previous)
        lines.extend(json.loads(line) for line in output.getvalue().splitlines() if line)


def sample(app: Any, name: str, **labels: str) -> float:
    return manager_of(app).metrics.registry.get_sample_value(name, labels) or 0.0


def test_polling_openings_are_capped_per_address_until_engine_io_closes_them(
    serve: Serve,
) -> None:
    app, url = serve(
        {
            "SOCKETIO_MAX_CONNECTIONS_PER_IP": "3",
            "TRUSTED_PROXIES": "1",
            "SOCKETIO_CONNECT_TIMEOUT": "1",
        }
    )
    door = manager_of(app).websocket.door
    answers = [polling_opening(url) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert all(a.text.startswith("0{") for a in answers[:3])  # Engine.IO OPEN packets
    refused = answers[3]
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert refused.json()["code"] == "TOO_MANY_CONNECTIONS"
    assert int(refused.headers["Retry-After"]) >= 1
    assert polling_opening(url, "192.0.2.2").status_code == 200  # another address
    assert door.open_connections("192.0.2.1") == 3
    # Never connected: the reaper closes them, and their slots come back.
    wait_until(lambda: door.open_connections("192.0.2.1") == 0, what="slots released", timeout=10)
    assert polling_opening(url).status_code == 200


def test_an_opening_counts_at_the_ip_level(serve: Serve) -> None:
    _, url = serve({"RATE_LIMIT_IP": "2/minute", "TRUSTED_PROXIES": "1"})
    answers = [polling_opening(url, "198.51.100.3") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].json()["code"] == "RATE_LIMITED"


def test_an_opening_that_fails_unexpectedly_is_the_one_mappers_problem(
    serve: Serve, redis_server: RedisServer
) -> None:
    """Redis refuses scripts with an error that is no outage (an ACL without ``evalsha``): the
    ``ip`` level's script raises, which is a bug to the door. It answers what every door
    answers then, never the server's bare 500: logged once with the request id, problem+json,
    counted."""
    app, url = serve({"LOG_FORMAT": "json", "TRUSTED_PROXIES": "1"})
    door = manager_of(app).websocket.door
    redis = Redis.from_url(redis_server.url)
    redis.acl_setuser("default", enabled=True, commands=["-evalsha", "-eval"])
    try:
        with app_log() as lines:
            refused = polling_opening(url, "203.0.113.7", request_id="door-bug-1")
    finally:
        redis.acl_setuser("default", enabled=True, commands=["+evalsha", "+eval"])
    assert refused.status_code == 500
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert refused.headers["X-Request-ID"] == "door-bug-1"
    problem = refused.json()
    assert problem["code"] == "INTERNAL_ERROR"
    assert problem["request_id"] == "door-bug-1"
    assert "NOPERM" not in refused.text  # no internals
    logged = [line for line in lines if line.get("request_id") == "door-bug-1"]
    assert [line["message"] for line in logged] == ["unhandled exception"]
    assert "NoPermissionError" in logged[0]["exc"]
    assert sample(app, "socketio_connects_total", outcome="INTERNAL_ERROR") == 1
    exceptions = {"route": "/socket.io/", "exception": "NoPermissionError"}
    assert sample(app, "http_exceptions_total", **exceptions) == 1
    assert door.open_connections("203.0.113.7") == 0  # the slot came back
    assert polling_opening(url, "203.0.113.7").status_code == 200  # scripts allowed again


def test_an_opening_while_redis_is_down_and_the_ip_level_fails_closed_is_a_503(
    serve: Serve, redis_server: RedisServer
) -> None:
    app, url = serve({"RATE_LIMIT_FAIL_CLOSED": "ip", "TRUSTED_PROXIES": "1"})
    with stopped(redis_server):
        refused = polling_opening(url, "203.0.113.8", request_id="door-outage-1")
    assert refused.status_code == 503
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert refused.json()["code"] == "DEPENDENCY_UNAVAILABLE"
    assert refused.json()["request_id"] == "door-outage-1"
    assert sample(app, "socketio_connects_total", outcome="DEPENDENCY_UNAVAILABLE") == 1
    assert manager_of(app).websocket.door.open_connections("203.0.113.8") == 0
