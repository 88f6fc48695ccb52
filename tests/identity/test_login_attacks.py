"""Attacks on login and register, performed against a real threaded server and real stores:
email enumeration by timing, lockout races, per-IP guessing, hashing floods."""

from __future__ import annotations

import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from flask import Flask

from core.app_manager import get_app_manager
from core.testing import AppFactory, problem, serving
from modules.auth.settings import AuthSettings
from modules.auth.testing import PASSWORD, login, register
from tests.production.helpers import sample

#: The production argon2 parameters (the test suite otherwise uses cheap ones).
REAL_ARGON2 = {
    "ARGON2_TIME_COST": str(AuthSettings.model_fields["argon2_time_cost"].default),
    "ARGON2_MEMORY_COST": str(AuthSettings.model_fields["argon2_memory_cost"].default),
}


def argon2_runs(url: str, operation: str) -> float:
    text = requests.get(f"{url}/metrics", timeout=10).text
    return sample(text, "auth_argon2_runs_total", operation=operation) or 0.0


def post_login(url: str, email: str, password: str) -> requests.Response:
    return requests.post(
        f"{url}/public/login", json={"email": email, "password": password}, timeout=30
    )


def test_login_timing_does_not_reveal_whether_an_email_is_registered(
    make_app: AppFactory,
) -> None:
    app = make_app({**REAL_ARGON2, "LOGIN_MAX_FAILURES": "1000"})
    user = register(app.test_client())
    unknown = f"nobody-{uuid.uuid4().hex[:8]}@example.com"
    known_times: list[float] = []
    unknown_times: list[float] = []
    with serving(app) as url, requests.Session() as session:

        def timed(email: str) -> float:
            began = time.perf_counter()
            response = session.post(
                f"{url}/public/login", json={"email": email, "password": "wrong-password"}
            )
            took = time.perf_counter() - began
            assert response.status_code == 401, response.text
            return took

        for _ in range(3):  # warm up connections and caches
            timed(user["email"]), timed(unknown)
        for _ in range(25):  # interleaved, so machine noise hits both alike
            known_times.append(timed(user["email"]))
            unknown_times.append(timed(unknown))
        verifications = argon2_runs(url, "verify")

    known, unknown_median = statistics.median(known_times), statistics.median(unknown_times)
    # One argon2 verification per attempt, whether the email exists or not.
    assert verifications == 2 * (3 + 25)
    slower = max(known, unknown_median)
    assert abs(known - unknown_median) < max(0.005, 0.25 * slower), (known, unknown_median)


def test_concurrent_guesses_check_at_most_max_failures_passwords(make_app: AppFactory) -> None:
    app = make_app({**REAL_ARGON2, "LOGIN_MAX_FAILURES": "5", "LOGIN_LOCK_SECONDS": "120"})
    user = register(app.test_client())
    with serving(app) as url:
        with ThreadPoolExecutor(max_workers=40) as pool:
            answers = list(
                pool.map(lambda i: post_login(url, user["email"], f"guess-{i:04d}"), range(40))
            )
        verifications = argon2_runs(url, "verify")
        right = post_login(url, user["email"], PASSWORD)

    codes = [response.json()["code"] for response in answers]
    assert codes.count("INVALID_CREDENTIALS") <= 5
    assert codes.count("LOGIN_LOCKED") >= 35
    assert set(codes) == {"INVALID_CREDENTIALS", "LOGIN_LOCKED"}
    assert verifications <= 5  # counted by the server: argon2 ran at most 5 times
    # Locked even for the right password, and only for the short lock.
    assert right.status_code == 429
    assert right.json()["code"] == "LOGIN_LOCKED"
    assert 1 <= int(right.headers["Retry-After"]) <= 120


def test_flask_users_unlock_ends_a_lock(make_app: AppFactory) -> None:
    app = make_app({"LOGIN_MAX_FAILURES": "2"})
    client = app.test_client()
    user = register(client)
    for _ in range(2):
        client.post("/public/login", json={"email": user["email"], "password": "nope-nope"})
    locked = client.post("/public/login", json={"email": user["email"], "password": PASSWORD})
    problem(locked, 429, "LOGIN_LOCKED")

    result = app.test_cli_runner().invoke(args=["users", "unlock", user["email"].upper()])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"{user['email']}: unlocked"
    login(client, user["email"])
    again = app.test_cli_runner().invoke(args=["users", "unlock", user["email"]])
    assert again.output.strip() == f"{user['email']}: was not locked"


def login_from(app: Flask, ip: str, email: str, password: str) -> Any:
    client = app.test_client()
    return client.post(
        "/public/login",
        json={"email": email, "password": password},
        headers={"X-Forwarded-For": ip},
    )


def test_one_ip_guessing_across_many_accounts_is_stopped(make_app: AppFactory) -> None:
    app = make_app({"LOGIN_IP_MAX_FAILURES": "3", "TRUSTED_PROXIES": "1"})
    victims = [register(app.test_client()) for _ in range(5)]
    attacker, other = "203.0.113.7", "198.51.100.9"
    for victim in victims[:3]:  # one guess per account: no account lockout helps here
        problem(login_from(app, attacker, victim["email"], "guess-1"), 401, "INVALID_CREDENTIALS")
    refused = login_from(app, attacker, victims[3]["email"], "guess-1")
    problem(refused, 429, "RATE_LIMITED")
    assert int(refused.headers["Retry-After"]) >= 1
    # Even a right password from that address waits; another address is not affected.
    problem(login_from(app, attacker, victims[4]["email"], PASSWORD), 429, "RATE_LIMITED")
    assert login_from(app, other, victims[4]["email"], PASSWORD).status_code == 200


def test_successful_logins_do_not_use_up_the_ip_failure_allowance(make_app: AppFactory) -> None:
    app = make_app({"LOGIN_IP_MAX_FAILURES": "2", "TRUSTED_PROXIES": "1"})
    user = register(app.test_client())
    for _ in range(5):
        assert login_from(app, "203.0.113.8", user["email"], PASSWORD).status_code == 200


def test_register_login_and_refresh_have_their_own_tighter_limits(make_app: AppFactory) -> None:
    defaults = AuthSettings.model_fields
    app = make_app(
        {
            "RATE_LIMIT_REGISTER": defaults["rate_limit_register"].default,
            "RATE_LIMIT_LOGIN": "3/minute",
            "RATE_LIMIT_REFRESH": "2/minute",
        }
    )
    client = app.test_client()
    created = [
        client.post(
            "/public/register",
            json={
                "email": f"r{i}-{uuid.uuid4().hex[:6]}@example.com",
                "username": f"r{i}_{uuid.uuid4().hex[:6]}",
                "password": PASSWORD,
            },
        )
        for i in range(6)
    ]
    assert [r.status_code for r in created] == [201] * 5 + [429]  # the default: 5/minute
    problem(created[-1], 429, "RATE_LIMITED")
    assert created[0].headers["X-RateLimit-Limit"] == "5"

    email = created[0].get_json()["user"]["email"]
    pair = login(client, email)
    login(client, email)
    login(client, email)
    problem(
        client.post("/public/login", json={"email": email, "password": PASSWORD}),
        429,
        "RATE_LIMITED",
    )
    for _ in range(2):
        answer = client.post("/public/refresh", json={"refresh_token": pair["refresh_token"]})
        assert answer.status_code in (200, 401)  # the second one is a reuse
    problem(client.post("/public/refresh", json={"refresh_token": "x"}), 429, "RATE_LIMITED")
    # The general IP limit still serves every other route.
    assert client.get("/health/live").status_code == 200
    assert client.post("/actions/system.ping", json={}).status_code == 200


def test_register_checks_a_taken_email_before_hashing(make_app: AppFactory) -> None:
    app = make_app()
    client = app.test_client()
    taken = register(client)
    with serving(app) as url:
        before = argon2_runs(url, "hash")
        for body in (
            {"email": taken["email"].upper(), "username": f"x_{uuid.uuid4().hex[:6]}"},
            {"email": f"n{uuid.uuid4().hex[:6]}@example.com", "username": taken["username"]},
        ):
            answer = requests.post(
                f"{url}/public/register", json={**body, "password": PASSWORD}, timeout=10
            )
            assert answer.status_code == 409
            assert answer.json()["code"] in ("EMAIL_TAKEN", "USERNAME_TAKEN")
        assert argon2_runs(url, "hash") == before  # no hash was spent on either
        fresh = {"email": f"f{uuid.uuid4().hex[:6]}@example.com", "username": "fresh_" + "a" * 4}
        created = requests.post(
            f"{url}/public/register", json={**fresh, "password": PASSWORD}, timeout=10
        )
        assert created.status_code == 201
        assert argon2_runs(url, "hash") == before + 1


def login_via(
    url: str, ip: str, email: str, password: str, device_token: str | None = None
) -> requests.Response:
    body = {"email": email, "password": password}
    if device_token is not None:
        body["device_token"] = device_token
    return requests.post(
        f"{url}/public/login", json=body, headers={"X-Forwarded-For": ip}, timeout=30
    )


def answered(response: requests.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["code"] == code


DEVICE_SETTINGS = {
    "TRUSTED_PROXIES": "1",
    "LOGIN_MAX_FAILURES": "5",
    "LOGIN_IP_MAX_FAILURES": str(AuthSettings.model_fields["login_ip_max_failures"].default),
}


def test_strangers_cannot_lock_the_owner_out_of_a_device_they_used(make_app: AppFactory) -> None:
    app = make_app(DEVICE_SETTINGS)
    owner = register(app.test_client())
    with serving(app) as url:
        first = login_via(url, "192.0.2.10", owner["email"], PASSWORD)
        assert first.status_code == 200, first.text
        device_token = first.json()["device_token"]
        assert first.json()["device_expires_in"] == 30 * 24 * 3600
        # 50 guesses from 50 addresses: no per-IP budget is spent, the account's is.
        codes = [
            login_via(url, f"203.0.113.{i}", owner["email"], f"guess-{i}").json()["code"]
            for i in range(1, 51)
        ]
        assert codes[:5] == ["INVALID_CREDENTIALS"] * 5
        assert set(codes[5:]) == {"LOGIN_LOCKED"}
        # An untrusted client, even with the right password, is locked out...
        answered(login_via(url, "198.51.100.1", owner["email"], PASSWORD), 429, "LOGIN_LOCKED")
        # ...the owner's device is not, from any address; each login hands out a new token.
        trusted = login_via(url, "198.51.100.2", owner["email"], PASSWORD, device_token)
        assert trusted.status_code == 200, trusted.text
        renewed = trusted.json()["device_token"]
        assert renewed != device_token
        assert renewed.startswith("dvt_")
        # The presented token was exchanged: it is untrusted now, the new one works.
        stale = login_via(url, "198.51.100.2", owner["email"], PASSWORD, device_token)
        answered(stale, 429, "LOGIN_LOCKED")
        again = login_via(url, "198.51.100.2", owner["email"], PASSWORD, renewed)
        assert again.status_code == 200, again.text
        # The trusted success did not reset the strangers' lock.
        still = login_via(url, "198.51.100.3", owner["email"], PASSWORD)
        assert still.json()["code"] == "LOGIN_LOCKED"
    with app.app_context():
        redis = get_app_manager().redis
        stored = redis.client.keys(redis.key("auth", "device", "*"))
        values = redis.client.mget(stored)
    # Stored hashed, bound to the account: the token itself is nowhere in Redis.
    assert all(renewed not in key.decode() for key in stored)
    assert set(values) == {owner["id"].encode()}


def test_a_device_token_of_another_account_is_untrusted(make_app: AppFactory) -> None:
    app = make_app(DEVICE_SETTINGS)
    victim, attacker = register(app.test_client()), register(app.test_client())
    with serving(app) as url:
        own = login_via(url, "192.0.2.20", attacker["email"], PASSWORD).json()["device_token"]
        for i in range(5):
            login_via(url, f"203.0.113.{i + 1}", victim["email"], f"guess-{i}")
        # The attacker's own device token buys no guesses on the victim's account.
        answered(login_via(url, "192.0.2.20", victim["email"], "guess-x", own), 429, "LOGIN_LOCKED")
        # Nor does a made-up one.
        made_up = login_via(url, "192.0.2.21", victim["email"], PASSWORD, "dvt_" + "A" * 43)
        answered(made_up, 429, "LOGIN_LOCKED")


def test_a_trusted_device_that_fails_too_often_is_locked_on_its_own(
    make_app: AppFactory,
) -> None:
    app = make_app({**DEVICE_SETTINGS, **REAL_ARGON2, "LOGIN_LOCK_SECONDS": "120"})
    owner = register(app.test_client())
    with serving(app) as url:
        stolen = login_via(url, "192.0.2.30", owner["email"], PASSWORD).json()["device_token"]
        before = argon2_runs(url, "verify")
        # A burst with the device token: at most 5 passwords are checked, then it is locked.
        with ThreadPoolExecutor(max_workers=20) as pool:
            answers = list(
                pool.map(
                    lambda i: login_via(url, "192.0.2.31", owner["email"], f"g-{i}", stolen),
                    range(20),
                )
            )
        codes = [answer.json()["code"] for answer in answers]
        assert codes.count("INVALID_CREDENTIALS") <= 5
        assert set(codes) == {"INVALID_CREDENTIALS", "LOGIN_LOCKED"}
        assert argon2_runs(url, "verify") - before <= 5
        locked = login_via(url, "192.0.2.31", owner["email"], PASSWORD, stolen)
        answered(locked, 429, "LOGIN_LOCKED")
        assert 1 <= int(locked.headers["Retry-After"]) <= 120
        # The device's failures are its own: the account is not locked for others.
        assert login_via(url, "198.51.100.4", owner["email"], PASSWORD).status_code == 200
