"""Redis memory: the framework needs ``maxmemory-policy noeviction`` (an evicted revocation
mark would make a revoked token valid again) and checks it at start-up; a Redis out of memory
refuses the limiter's script, and that must give the level's fail-open/closed answer, never
a 500. Performed against a Valkey of its own with a tiny ``maxmemory``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from core.devstack import RedisServer, free_port
from core.errors import StartupError
from core.testing import AppFactory, bearer, manager_of, problem
from modules.auth.testing import user_with_tokens


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", free_port())
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-ttl", "volatile-lru"])
def test_start_up_refuses_a_redis_that_may_evict_keys(
    make_app: AppFactory, own_redis: RedisServer, policy: str
) -> None:
    client = redis.Redis.from_url(own_redis.url)
    client.config_set("maxmemory-policy", policy)
    with pytest.raises(StartupError, match="maxmemory-policy") as refused:
        make_app({"REDIS_URL": own_redis.url})
    assert policy in str(refused.value)
    assert "noeviction" in str(refused.value)
    client.config_set("maxmemory-policy", "noeviction")
    assert (
        make_app({"REDIS_URL": own_redis.url}).test_client().get("/health/live").status_code == 200
    )


def out_of_memory(server: RedisServer) -> None:
    client = redis.Redis.from_url(server.url)
    client.set("ballast", "x" * 3_000_000)
    client.config_set("maxmemory", "1mb")
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        client.set("probe", "1")


def test_an_out_of_memory_redis_gives_the_fail_open_answer(
    make_app: AppFactory, own_redis: RedisServer
) -> None:
    app = make_app({"REDIS_URL": own_redis.url})
    client = app.test_client()
    _, pair = user_with_tokens(client)
    out_of_memory(own_redis)

    response = client.get("/public/probe/ip")  # the ip level fails open by default
    assert response.status_code == 200, response.get_json()
    assert "X-RateLimit-Limit" not in response.headers
    assert manager_of(app).rate_limiter.redis_errors >= 1
    # A revocation cannot be checked: closed by default (REVOCATION_FAIL_OPEN=false).
    problem(
        client.get("/userauth/me", headers=bearer(pair["access_token"])),
        503,
        "DEPENDENCY_UNAVAILABLE",
    )


def test_an_out_of_memory_redis_gives_the_fail_closed_answer(
    make_app: AppFactory, own_redis: RedisServer
) -> None:
    app = make_app({"REDIS_URL": own_redis.url, "RATE_LIMIT_FAIL_CLOSED": "ip"})
    client = app.test_client()
    out_of_memory(own_redis)
    problem(client.get("/public/probe/ip"), 503, "DEPENDENCY_UNAVAILABLE")
