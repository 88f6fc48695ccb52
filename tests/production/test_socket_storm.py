"""A reconnect storm against the production server: after an instance dies its clients all
reconnect to the others at the same moment. Every socket is admitted (nothing refused but by
the configured limits: a momentarily busy Redis pool makes callers wait, it does not fail
them), and once they all leave no presence is left in Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from core.testing import AppFactory
from tests.production.helpers import Gunicorn, access_tokens
from tests.support import js_client
from tests.support.js_client import JsCrowd
from tests.support.presence import presence_left

SOCKETS = 500
USERS = 50  # ten sockets each: SOCKETIO_MAX_SOCKETS_PER_USER's default


@pytest.fixture
def crowd() -> Iterator[JsCrowd]:
    client = JsCrowd(js_client.install())
    yield client
    client.close()


def trouble(server: Gunicorn) -> list[str]:
    """The server's log lines that explain a refusal (what Redis error, where)."""
    words = ("redis", "unavailable", "Traceback", "ERROR")
    lines = server.output().splitlines()
    return [line[:400] for line in lines if any(w in line for w in words)][:20]


def test_a_reconnect_storm_of_500_sockets_is_admitted_and_leaves_no_presence(
    app_env: dict[str, str], make_app: AppFactory, crowd: JsCrowd, tmp_path: Path
) -> None:
    env = {
        **app_env,
        # The storm comes from one address: the per-IP limit is not what is tested here.
        "RATE_LIMIT_IP": "100000/second",
        "SOCKETIO_MAX_CONNECTIONS_PER_IP": "100000",
        # The production default pool (REDIS_MAX_CONNECTIONS) and limiter budget.
        "RATE_LIMIT_REDIS_TIMEOUT_MS": "100",
    }
    server = Gunicorn(env, tmp_path / "gunicorn.log", ())
    try:
        server.wait_ready()
        users = access_tokens(make_app(start=False), USERS, "storm")
        tokens = [users[n % USERS] for n in range(SOCKETS)]

        opened = crowd.open([server.url], tokens, pace=0, timeout=60, wait=180)
        assert opened["refused"] == {}, (opened, trouble(server))
        assert opened["connected"] == SOCKETS

        # Everyone rejoins the room they were in, at the same moment too.
        room = crowd.emit(0, "create_room", {"name": "storm"})
        assert room["ok"], room
        joined = crowd.emit_all("join_room", {"room_id": room["room"]["id"]}, wait=180)
        assert joined == {"ok": SOCKETS}, (joined, trouble(server))

        closed = crowd.close_all(pace=0)
        assert closed["closed"] == SOCKETS
        client = redis.Redis.from_url(app_env["REDIS_URL"])
        prefix = app_env["REDIS_KEY_PREFIX"]
        deadline = time.monotonic() + 60
        while (left := presence_left(client, prefix)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert left == {}, f"presence left behind: {dict(list(left.items())[:5])} ..."
        assert "presence not cleaned" not in server.output()
        assert "DEPENDENCY_UNAVAILABLE" not in server.output()
    finally:
        server.stop()
