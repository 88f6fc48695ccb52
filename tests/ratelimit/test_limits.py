"""Rate limits through the HTTP API against real Redis: levels, headers, sliding windows,
overrides, exemptions, concurrency and client IPs."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from flask.testing import FlaskClient

from core.errors import ConfigurationError
from core.managers.rate_limiter.limits import Limit, parse_limits
from core.testing import AppFactory, bearer, problem
from modules.auth.testing import user_with_tokens

GENEROUS = "1000/second"


def statuses(client: FlaskClient, path: str, count: int, **kwargs: Any) -> list[int]:
    return [client.get(path, **kwargs).status_code for _ in range(count)]


def test_limit_strings_parse_and_bad_ones_are_refused() -> None:
    assert parse_limits("20/second; 600/minute") == (Limit(20, 1000), Limit(600, 60_000))
    assert parse_limits("100/5 minutes;1/day") == (Limit(100, 300_000), Limit(1, 86_400_000))
    assert parse_limits("") == ()
    for bad in ("20", "20/fortnight", "0/second", "x/second"):
        with pytest.raises(ValueError, match=f"'{bad}'"):
            parse_limits(bad)


def test_a_bad_limit_setting_stops_start_up(make_app: AppFactory) -> None:
    with pytest.raises(ConfigurationError, match="RATE_LIMIT_USER: 'lots/second'"):
        make_app({"RATE_LIMIT_USER": "lots/second"})


def test_ip_level_limits_with_exact_headers(make_app: AppFactory) -> None:
    client = make_app({"RATE_LIMIT_IP": "3/minute"}).test_client()
    start = int(time.time())
    first = client.get("/health/live")  # exempt: no limit, no headers
    assert "X-RateLimit-Limit" not in first.headers

    answers = [client.get("/public/probe/ip") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0"]
    assert {a.headers["X-RateLimit-Limit"] for a in answers} == {"3"}
    # GCRA: one request every 20 s refills; after three the bucket is full for 60 s.
    assert start + 59 <= int(answers[-1].headers["X-RateLimit-Reset"]) <= start + 62

    limited = client.get("/public/probe/ip")
    body = problem(limited, 429, "RATE_LIMITED")
    assert body["level"] == "ip"
    assert 19 <= int(limited.headers["Retry-After"]) <= 21
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert limited.headers["X-RateLimit-Limit"] == "3"


def test_user_level_limits_each_user_separately(make_app: AppFactory) -> None:
    client = make_app({"RATE_LIMIT_IP": GENEROUS, "RATE_LIMIT_USER": "2/minute"}).test_client()
    _, ada = user_with_tokens(client)
    _, bob = user_with_tokens(client)
    ada_statuses = statuses(client, "/userauth/me", 3, headers=bearer(ada["access_token"]))
    assert ada_statuses == [200, 200, 429]
    # Bob shares the IP but not the user bucket.
    assert statuses(client, "/userauth/me", 2, headers=bearer(bob["access_token"])) == [200, 200]


def test_headers_describe_the_level_with_the_fewest_requests_left(make_app: AppFactory) -> None:
    client = make_app({"RATE_LIMIT_IP": "100/minute", "RATE_LIMIT_USER": "5/minute"}).test_client()
    _, pair = user_with_tokens(client)
    response = client.get("/userauth/me", headers=bearer(pair["access_token"]))
    assert response.headers["X-RateLimit-Limit"] == "5"
    assert response.headers["X-RateLimit-Remaining"] == "4"


def test_both_levels_apply_together(make_app: AppFactory) -> None:
    client = make_app({"RATE_LIMIT_IP": "3/minute", "RATE_LIMIT_USER": "100/minute"}).test_client()
    _, pair = user_with_tokens(client)  # register and login have IP buckets of their own
    results = statuses(client, "/userauth/me", 4, headers=bearer(pair["access_token"]))
    assert results == [200, 200, 200, 429]  # the IP bucket ran out; the user one has plenty
    assert problem(client.get("/public/probe/ip"), 429, "RATE_LIMITED")["level"] == "ip"


def test_windows_slide_without_a_double_burst_at_a_boundary(make_app: AppFactory) -> None:
    client = make_app({"RATE_LIMIT_IP": "4/second"}).test_client()
    client.get("/health/live")
    # Burst just before a whole second, then again just after it.
    time.sleep(1 - (time.time() % 1) + 0.80 if time.time() % 1 > 0.8 else 0.80 - time.time() % 1)
    before = statuses(client, "/public/probe/ip", 4)
    time.sleep(max(0.0, 1.05 - (time.time() % 1)) if time.time() % 1 > 0.5 else 0.05)
    after = statuses(client, "/public/probe/ip", 4)
    assert before == [200, 200, 200, 200]
    # A fixed window would allow 4 more here; GCRA allows about one per 250 ms elapsed.
    assert after.count(200) <= 1


def test_the_limit_refills_smoothly(make_app: AppFactory) -> None:
    client = make_app({"RATE_LIMIT_IP": "5/second"}).test_client()
    assert statuses(client, "/public/probe/ip", 6).count(200) == 5
    time.sleep(0.45)  # two 200 ms intervals
    assert statuses(client, "/public/probe/ip", 3).count(200) == 2


def test_a_route_override_replaces_the_default_in_its_own_bucket(make_app: AppFactory) -> None:
    client = make_app({"RATE_LIMIT_IP": "100/minute"}).test_client()
    assert statuses(client, "/public/probe/limited", 3) == [200, 200, 429]
    # The default bucket is untouched by the route's.
    response = client.get("/public/probe/ip")
    assert response.status_code == 200
    assert response.headers["X-RateLimit-Remaining"] == "99"


def test_exempt_routes_are_never_limited(make_app: AppFactory) -> None:
    client = make_app({"RATE_LIMIT_IP": "1/minute"}).test_client()
    for path in ("/public/probe/unlimited", "/health/live", "/health/ready"):
        assert set(statuses(client, path, 3)) == {200}, path


def test_concurrent_requests_never_exceed_the_limit(make_app: AppFactory) -> None:
    app = make_app({"RATE_LIMIT_IP": "10/minute"})
    results: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        client = app.test_client()
        for _ in range(4):
            status = client.get("/public/probe/ip").status_code
            with lock:
                results.append(status)

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 40
    assert results.count(200) == 10
    assert results.count(429) == 30


def test_a_spoofed_forwarded_for_changes_nothing_without_trusted_proxies(
    make_app: AppFactory,
) -> None:
    client = make_app({"RATE_LIMIT_IP": "1/minute"}).test_client()
    first = client.get("/public/probe/ip", headers={"X-Forwarded-For": "198.51.100.1"})
    second = client.get("/public/probe/ip", headers={"X-Forwarded-For": "198.51.100.2"})
    assert (first.status_code, second.status_code) == (200, 429)


def test_forwarded_for_is_honoured_through_a_trusted_proxy(make_app: AppFactory) -> None:
    client = make_app({"RATE_LIMIT_IP": "1/minute", "TRUSTED_PROXIES": "1"}).test_client()
    first = client.get("/public/probe/ip", headers={"X-Forwarded-For": "198.51.100.1"})
    second = client.get("/public/probe/ip", headers={"X-Forwarded-For": "198.51.100.2"})
    again = client.get("/public/probe/ip", headers={"X-Forwarded-For": "198.51.100.1"})
    assert (first.status_code, second.status_code, again.status_code) == (200, 200, 429)


def test_bad_credentials_still_count_against_the_ip(make_app: AppFactory) -> None:
    client = make_app({"RATE_LIMIT_IP": "2/minute"}).test_client()
    codes = [
        client.get("/userauth/me", headers=bearer("not-a-token")).get_json()["code"]
        for _ in range(3)
    ]
    assert codes == ["TOKEN_INVALID", "TOKEN_INVALID", "RATE_LIMITED"]


def test_rate_limiting_can_be_switched_off(make_app: AppFactory) -> None:
    client = make_app({"RATE_LIMIT_IP": "1/minute", "RATE_LIMIT_ENABLED": "false"}).test_client()
    assert statuses(client, "/public/probe/ip", 3) == [200, 200, 200]
