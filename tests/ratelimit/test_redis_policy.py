"""One Redis round trip per request (counted with MONITOR), and what happens when Redis is
unreachable or slow."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from core.devstack import RedisServer
from core.devstack.redis import client_commands
from core.errors import ConfigurationError
from core.testing import AppFactory, bearer, manager_of, problem
from modules.api_keys.testing import create_api_key
from modules.auth.testing import admin_tokens, user_with_tokens
from tests.support.servers import frozen, stopped


def test_a_jwt_request_costs_one_round_trip_for_revocation_bans_and_every_limit(
    make_app: AppFactory, redis_server: RedisServer
) -> None:
    client = make_app({"RATE_LIMIT_IP": "10/second;100/minute"}).test_client()
    _, pair = user_with_tokens(client)
    headers = bearer(pair["access_token"])
    assert client.get("/userauth/me", headers=headers).status_code == 200  # warm connections

    def one_request() -> None:
        response = client.get("/userauth/me", headers=headers)
        assert response.status_code == 200
        assert response.headers["X-RateLimit-Limit"] == "10"

    commands = client_commands(redis_server.url, one_request)
    assert len(commands) == 1, commands
    assert commands[0].startswith("EVALSHA")
    # Two revocation keys (jti, family); ip (2 limits) and user (2 limits) with their bans.
    assert ":jwt:revoked:jti:" in commands[0]
    assert ":jwt:revoked:fam:" in commands[0]
    assert ":rl:ban:ip:127.0.0.1" in commands[0]
    assert ":rl:ban:user:" in commands[0]


def test_an_api_key_request_costs_one_round_trip(
    make_app: AppFactory, redis_server: RedisServer
) -> None:
    app = make_app()
    client = app.test_client()
    admin = admin_tokens(app, client)["access_token"]
    key = create_api_key(client, admin, ["a"])["key"]
    assert client.get("/keyauth/whoami", headers={"X-API-Key": key}).status_code == 200

    commands = client_commands(
        redis_server.url, lambda: client.get("/keyauth/whoami", headers={"X-API-Key": key})
    )
    assert len(commands) == 1, commands
    assert ":api_keys:revoked:" in commands[0]
    assert ":rl:ban:api_key:" in commands[0]


def test_exempt_routes_cost_no_round_trip(make_app: AppFactory, redis_server: RedisServer) -> None:
    client = make_app().test_client()
    client.get("/health/live")
    assert client_commands(redis_server.url, lambda: client.get("/health/live")) == []


def test_redis_down_fails_open_for_limits(make_app: AppFactory, redis_server: RedisServer) -> None:
    app = make_app({"RATE_LIMIT_IP": "1/minute"})
    client = app.test_client()
    client.get("/public/probe/ip")
    with stopped(redis_server):
        served = [client.get("/public/probe/ip") for _ in range(3)]
    assert [r.status_code for r in served] == [200, 200, 200]
    assert "X-RateLimit-Limit" not in served[0].headers
    assert manager_of(app).rate_limiter.redis_errors == 3
    prometheus = {"REMOTE_ADDR": "10.0.0.9"}  # /metrics is limited too: from its own address
    scrape = client.get("/metrics", environ_base=prometheus).get_data(as_text=True)
    assert "rate_limiter_redis_errors_total 3.0" in scrape


def test_redis_down_fails_closed_for_configured_levels(
    make_app: AppFactory, redis_server: RedisServer
) -> None:
    client = make_app({"RATE_LIMIT_FAIL_CLOSED": "ip"}).test_client()
    with stopped(redis_server):
        problem(client.get("/public/probe/ip"), 503, "DEPENDENCY_UNAVAILABLE")
        assert client.get("/health/live").status_code == 200  # exempt


def test_a_slow_redis_is_given_up_on_in_milliseconds(
    make_app: AppFactory, redis_server: RedisServer
) -> None:
    app = make_app({"RATE_LIMIT_REDIS_TIMEOUT_MS": "50"})
    client: FlaskClient = app.test_client()
    client.get("/public/probe/ip")
    with frozen(redis_server):
        response = client.get("/public/probe/ip")
    assert response.status_code == 200  # served, fail-open
    assert manager_of(app).rate_limiter.redis_errors == 1


def test_unknown_fail_closed_levels_are_refused_at_start_up(make_app: AppFactory) -> None:
    with pytest.raises(ConfigurationError, match=r"RATE_LIMIT_FAIL_CLOSED: .*'planet'"):
        make_app({"RATE_LIMIT_FAIL_CLOSED": "ip,planet"})
