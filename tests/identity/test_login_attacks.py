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

from config.settings import Settings
from core.testing import PASSWORD, AppFactory, login, problem, register, serving
from tests.production.helpers import sample

#: The production argon2 parameters (the test suite otherwise uses cheap ones).
REAL_ARGON2 = {
    "ARGON2_TIME_COST": str(Settings.model_fields["argon2_time_cost"].default),
    "ARGON2_MEMORY_COST": str(Settings.model_fields["argon2_memory_cost"].default),
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
    defaults = Settings.model_fields
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
