"""``HEALTH_PORT``: ``/health/live`` answered by a thread beside the gevent worker's loop, from
the loop's beat (core/http/liveness.py, decision 101).

On a served gunicorn (the production config, one gevent worker): the port answers while the
loop is held and says so (503 ``LOOP_STALLED``) once the loop lags past ``LIVENESS_MAX_LAG``,
then 200 again when it turns; anything but ``GET``/``HEAD /health/live`` is a problem
document; a flood of connections gets at most its budget of answers and the app still serves.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from flask import Flask

from core.devstack import free_port
from core.errors import StartupError
from core.http.liveness import ANSWERS_PER_SECOND
from core.testing import manager_of
from tests.production.helpers import Gunicorn
from tests.support.servers import wait_until

AppFactory = Callable[..., Flask]
#: How long the test holds the worker's loop, and the lag past which the port says so.
HOLD = 4.0
MAX_LAG = 1.0


@pytest.fixture
def served(app_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[Gunicorn, str]]:
    port = free_port()
    env = {**app_env, "HEALTH_PORT": str(port), "LIVENESS_MAX_LAG": str(MAX_LAG)}
    server = Gunicorn(env, tmp_path / "gunicorn.log", ())
    try:
        server.wait_ready()
        yield server, f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def test_the_port_answers_while_the_loop_is_held_and_says_it_stalled(
    served: tuple[Gunicorn, str],
) -> None:
    server, health = served
    live = requests.get(health + "/health/live", headers={"X-Request-ID": "probe-1"}, timeout=5)
    assert live.status_code == 200
    assert live.json()["status"] == "ok"
    assert 0 <= live.json()["loop_lag_ms"] < MAX_LAG * 1000
    assert live.headers["X-Request-ID"] == "probe-1"
    assert live.headers["Cache-Control"] == "no-store"

    held: list[int] = []
    holder = threading.Thread(
        target=lambda: held.append(
            requests.get(
                f"{server.url}/public/metered/hold-loop?seconds={HOLD}", timeout=30
            ).status_code
        )
    )
    holder.start()
    try:
        # the loop is held: the app's port cannot answer, the liveness port can, and says so
        stalled = None
        deadline = time.monotonic() + HOLD
        while time.monotonic() < deadline:
            answer = requests.get(health + "/health/live", timeout=2)
            if answer.status_code == 503:
                stalled = answer
                break
            assert answer.status_code == 200
            time.sleep(0.1)
        assert stalled is not None, "the liveness port never reported the held loop"
        assert stalled.headers["Content-Type"] == "application/problem+json"
        body = stalled.json()
        assert body["code"] == "LOOP_STALLED"
        assert body["loop_lag_ms"] >= MAX_LAG * 1000
        assert body["request_id"] == stalled.headers["X-Request-ID"]
        with pytest.raises(requests.Timeout):
            requests.get(server.url + "/health/live", timeout=0.5)
    finally:
        holder.join(30)
    assert held == [200]
    # the loop turns again: so does the probe
    wait_until(
        lambda: requests.get(health + "/health/live", timeout=2).status_code == 200,
        15,
        "the liveness port to answer 200 once the loop turns",
    )
    assert requests.get(server.url + "/health/live", timeout=5).status_code == 200


def test_the_port_serves_nothing_else(served: tuple[Gunicorn, str]) -> None:
    _, health = served
    other = requests.get(health + "/metrics", timeout=5)
    assert other.status_code == 404
    assert other.json()["code"] == "NOT_FOUND"
    posted = requests.post(health + "/health/live", timeout=5)
    assert posted.status_code == 405
    assert posted.headers["Allow"] == "GET, HEAD"
    head = requests.head(health + "/health/live", timeout=5)
    assert head.status_code == 200
    assert head.content == b""
    with socket.create_connection(("127.0.0.1", int(health.rsplit(":", 1)[1])), 5) as raw:
        raw.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        answer = raw.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"application/problem+json" in answer


def test_a_flood_gets_its_budget_of_answers_and_the_app_keeps_serving(
    served: tuple[Gunicorn, str],
) -> None:
    server, health = served
    port = int(health.rsplit(":", 1)[1])
    answered = refused = 0
    started = time.monotonic()
    for _ in range(400):
        with socket.create_connection(("127.0.0.1", port), 5) as raw:
            try:
                raw.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
                reply = raw.recv(4096)
            except (ConnectionResetError, BrokenPipeError):
                reply = b""  # closed unanswered, the request unread
        if reply.startswith(b"HTTP/1.1 200 "):
            answered += 1
        else:
            assert reply == b"", reply  # closed unanswered
            refused += 1
    elapsed = time.monotonic() - started
    assert refused > 0
    assert answered <= ANSWERS_PER_SECOND * (elapsed + 1)
    assert requests.get(server.url + "/health/ready", timeout=10).status_code == 200

    def live() -> bool:
        try:
            return requests.get(health + "/health/live", timeout=2).status_code == 200
        except requests.ConnectionError:  # closed unanswered: the budget is still spent
            return False

    wait_until(live, 5, "the budget to refill")


def test_a_busy_health_port_stops_start_up_naming_the_setting(make_app: AppFactory) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(StartupError, match="HEALTH_PORT"):
            make_app({"HEALTH_PORT": str(port)})


def test_closing_the_app_closes_the_port(make_app: AppFactory) -> None:
    port = free_port()
    app = make_app({"HEALTH_PORT": str(port)})
    url = f"http://127.0.0.1:{port}/health/live"
    # outside gevent (this test process) there is no loop to stall: the lag is 0
    assert requests.get(url, timeout=5).json() == {"status": "ok", "loop_lag_ms": 0.0}
    manager_of(app).close()
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=2)


def test_a_request_sent_a_byte_at_a_time_is_cut_off_at_the_read_timeout(
    make_app: AppFactory,
) -> None:
    """The port serves one connection at a time, so one that drips its request must not hold
    it: READ_TIMEOUT bounds the whole request, not each read."""
    port = free_port()
    make_app({"HEALTH_PORT": str(port)})
    request = b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), 5) as raw:
        try:
            for byte in request:  # a byte every 0.1 s: 4 s in all, the bound is 0.5 s
                raw.sendall(bytes([byte]))
                time.sleep(0.1)
            reply = raw.recv(4096)
        except (ConnectionResetError, BrokenPipeError):
            reply = b""
    assert reply == b""  # closed unanswered
    assert requests.get(f"http://127.0.0.1:{port}/health/live", timeout=5).status_code == 200
