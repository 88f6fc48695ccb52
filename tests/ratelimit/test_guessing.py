"""Attacks the limiter must count: guessing action names, and IPv6 clients rotating
addresses inside their own network."""

from __future__ import annotations

from flask.testing import FlaskClient

from core.testing import AppFactory
from modules.auth.testing import register


def statuses(client: FlaskClient, path: str, count: int, **headers: str) -> list[int]:
    return [client.post(path, json={}, headers=headers).status_code for _ in range(count)]


def test_guessing_action_names_is_rate_limited(make_app: AppFactory) -> None:
    client = make_app({"RATE_LIMIT_IP": "3/minute"}).test_client()
    codes = [client.post(f"/actions/guess.n{i}", json={}) for i in range(5)]
    assert [r.status_code for r in codes] == [404, 404, 404, 429, 429]
    assert codes[0].get_json()["code"] == "ACTION_NOT_FOUND"
    assert codes[3].get_json()["code"] == "RATE_LIMITED"


def rotating(client: FlaskClient, network: str, count: int) -> list[int]:
    """One request from each of ``count`` addresses of ``network`` (a /64 written as
    ``2001:db8:1:2``), through a trusted proxy."""
    return [
        client.get(
            "/public/probe/ip", headers={"X-Forwarded-For": f"{network}::{i + 1:x}"}
        ).status_code
        for i in range(count)
    ]


def test_ipv6_clients_cannot_escape_the_limit_by_rotating_addresses(
    make_app: AppFactory,
) -> None:
    client = make_app({"RATE_LIMIT_IP": "3/minute", "TRUSTED_PROXIES": "1"}).test_client()
    assert rotating(client, "2001:db8:1:2", 5) == [200, 200, 200, 429, 429]
    assert rotating(client, "2001:db8:1:3", 1) == [200]  # the next /64 is someone else
    mapped = [
        client.get("/public/probe/ip", headers={"X-Forwarded-For": f}).status_code
        for f in ("192.0.2.7", "::ffff:192.0.2.7", "192.0.2.7", "::ffff:192.0.2.7")
    ]
    assert mapped == [200, 200, 200, 429]  # an IPv4-mapped address is that IPv4 address


def test_the_ipv6_prefix_is_a_setting(make_app: AppFactory) -> None:
    client = make_app(
        {"RATE_LIMIT_IP": "3/minute", "TRUSTED_PROXIES": "1", "RATE_LIMIT_IPV6_PREFIX": "48"}
    ).test_client()
    assert rotating(client, "2001:db8:1:2", 2) == [200, 200]
    assert rotating(client, "2001:db8:1:3", 2) == [200, 429]  # the same /48


def test_ipv6_rotation_does_not_escape_the_login_failure_limit(make_app: AppFactory) -> None:
    app = make_app({"LOGIN_IP_MAX_FAILURES": "3", "TRUSTED_PROXIES": "1"})
    client = app.test_client()
    victims = [register(client) for _ in range(5)]
    answers = [
        client.post(
            "/public/login",
            json={"email": victim["email"], "password": "guess-1"},
            headers={"X-Forwarded-For": f"2001:db8:7:7::{n + 1:x}"},  # a new address each time
        )
        for n, victim in enumerate(victims)
    ]
    assert [a.status_code for a in answers] == [401, 401, 401, 429, 429]
