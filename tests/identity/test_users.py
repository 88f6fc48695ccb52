"""Register, login, refresh, logout and me: every row of API.md's "Users and tokens"."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.testing import AppFactory, bearer, manager_of, problem
from modules.auth.testing import PASSWORD, login, register, user_with_tokens

USER_FIELDS = {"id", "email", "username", "roles", "created_at"}


def test_register_returns_the_user_without_any_secret(client: FlaskClient) -> None:
    response = client.post(
        "/public/register",
        json={"email": "Ada@Example.COM", "username": "ada.l", "password": PASSWORD},
    )
    assert response.status_code == 201
    user = response.get_json()["user"]
    assert set(user) == USER_FIELDS
    assert user["email"] == "ada@example.com"  # normalised
    assert user["username"] == "ada.l"
    assert user["roles"] == ["user"]
    assert isinstance(user["id"], str)
    assert user["created_at"].endswith("Z")
    assert PASSWORD not in response.get_data(as_text=True)
    assert "argon2" not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"email": "not-an-email", "username": "okname", "password": PASSWORD}, ["/email"]),
        ({"email": "a@example.com", "username": "ab", "password": PASSWORD}, ["/username"]),
        ({"email": "a@example.com", "username": "x" * 33, "password": PASSWORD}, ["/username"]),
        ({"email": "a@example.com", "username": "bad name", "password": PASSWORD}, ["/username"]),
        ({"email": "a@example.com", "username": "okname", "password": "short"}, ["/password"]),
        ({"email": "a@example.com", "username": "okname", "password": "p" * 129}, ["/password"]),
        ({}, ["/email", "/username", "/password"]),
        ({"email": 5, "username": ["x"], "password": None}, ["/email", "/username", "/password"]),
    ],
)
def test_register_rejects_bad_input_naming_every_field(
    client: FlaskClient, body: dict[str, Any], fields: list[str]
) -> None:
    errors = problem(client.post("/public/register", json=body), 400, "VALIDATION_ERROR")["errors"]
    assert sorted(error["field"] for error in errors) == sorted(fields)


def test_password_limits_are_inclusive(client: FlaskClient) -> None:
    register(client, password="p" * 8)
    register(client, password="p" * 128)


def test_register_conflicts_on_email_and_username_case_insensitively(client: FlaskClient) -> None:
    user = register(client, username="Grace")
    taken_email = client.post(
        "/public/register",
        json={"email": user["email"].upper(), "username": "other1", "password": PASSWORD},
    )
    problem(taken_email, 409, "EMAIL_TAKEN")
    taken_name = client.post(
        "/public/register",
        json={"email": "new@example.com", "username": "grace", "password": PASSWORD},
    )
    problem(taken_name, 409, "USERNAME_TAKEN")


def test_login_returns_a_token_pair(client: FlaskClient) -> None:
    user = register(client)
    pair = login(client, user["email"].upper())
    assert set(pair) == {
        "access_token",
        "refresh_token",
        "token_type",
        "expires_in",
        "refresh_expires_in",
        "user",
        "device_token",
        "device_expires_in",
    }
    assert pair["token_type"] == "Bearer"
    assert pair["expires_in"] == 900
    assert pair["refresh_expires_in"] == 14 * 24 * 3600
    assert pair["user"] == user


def test_unknown_email_and_wrong_password_are_the_same_401(client: FlaskClient) -> None:
    user = register(client)
    wrong = client.post("/public/login", json={"email": user["email"], "password": "wrong-pass"})
    unknown = client.post(
        "/public/login", json={"email": "nobody@example.com", "password": PASSWORD}
    )
    wrong_body = problem(wrong, 401, "INVALID_CREDENTIALS")
    unknown_body = problem(unknown, 401, "INVALID_CREDENTIALS")
    assert wrong_body["detail"] == unknown_body["detail"]


def test_me_returns_the_caller(client: FlaskClient) -> None:
    user, pair = user_with_tokens(client)
    response = client.get("/userauth/me", headers=bearer(pair["access_token"]))
    assert response.status_code == 200
    assert response.get_json() == {"user": user}


def test_me_requires_a_bearer_token(client: FlaskClient) -> None:
    problem(client.get("/userauth/me"), 401, "AUTH_REQUIRED")
    problem(
        client.get("/userauth/me", headers={"Authorization": "Basic abc"}), 401, "AUTH_REQUIRED"
    )
    problem(client.get("/userauth/me", headers=bearer("not.a.jwt")), 401, "TOKEN_INVALID")


def test_lockout_after_max_failures_even_for_the_right_password(make_app: AppFactory) -> None:
    client = make_app({"LOGIN_MAX_FAILURES": "3"}).test_client()
    user = register(client)
    for _ in range(3):
        wrong = client.post("/public/login", json={"email": user["email"], "password": "nope-nope"})
        problem(wrong, 401, "INVALID_CREDENTIALS")
    locked = client.post("/public/login", json={"email": user["email"], "password": PASSWORD})
    problem(locked, 429, "LOGIN_LOCKED")
    assert 1 <= int(locked.headers["Retry-After"]) <= 900


def test_a_successful_login_resets_the_failure_counter(make_app: AppFactory) -> None:
    client = make_app({"LOGIN_MAX_FAILURES": "3"}).test_client()
    user = register(client)
    for _ in range(2):
        client.post("/public/login", json={"email": user["email"], "password": "nope-nope"})
    login(client, user["email"])
    for _ in range(2):
        client.post("/public/login", json={"email": user["email"], "password": "nope-nope"})
    login(client, user["email"])  # would be locked if the first two failures still counted


def test_the_lock_ends_when_the_window_passes(make_app: AppFactory) -> None:
    app = make_app({"LOGIN_MAX_FAILURES": "2", "LOGIN_LOCKOUT_SECONDS": "60"})
    client = app.test_client()
    user = register(client)
    for _ in range(2):
        client.post("/public/login", json={"email": user["email"], "password": "nope-nope"})
    problem(
        client.post("/public/login", json={"email": user["email"], "password": PASSWORD}),
        429,
        "LOGIN_LOCKED",
    )
    # Let the window pass without sleeping: expire the counter the way Redis would.
    redis_manager = manager_of(app).redis
    keys = list(
        redis_manager.client.scan_iter(match=redis_manager.key("auth", "login_failures", "*"))
    )
    assert len(keys) == 1
    redis_manager.client.pexpire(keys[0], 1)
    time.sleep(0.05)
    login(client, user["email"])


def test_login_validates_its_body(client: FlaskClient) -> None:
    errors = problem(client.post("/public/login", json={"email": "a@b.c"}), 400, "VALIDATION_ERROR")
    assert errors["errors"] == [{"field": "/password", "message": "is required"}]


def test_a_changed_argon2_cost_rehashes_on_login(make_app: AppFactory) -> None:
    cheap = make_app()
    user = register(cheap.test_client())
    users = manager_of(cheap).database.mongo.collection("users")
    before = users.find_one({"email": user["email"]})["password_hash"]
    assert "t=1" in before

    stronger = make_app({"ARGON2_TIME_COST": "2"})
    login(stronger.test_client(), user["email"])
    after = users.find_one({"email": user["email"]})["password_hash"]
    assert "t=2" in after
    login(stronger.test_client(), user["email"])  # the new hash verifies


def test_no_password_hash_or_token_reaches_the_logs(
    client: FlaskClient, log_output: io.StringIO
) -> None:
    user, pair = user_with_tokens(client)
    client.get("/userauth/me", headers=bearer(pair["access_token"]))
    client.post("/public/refresh", json={"refresh_token": pair["refresh_token"]})
    client.post("/public/refresh", json={"refresh_token": pair["refresh_token"]})  # reuse
    client.post("/public/login", json={"email": user["email"], "password": "wrong-password"})
    client.post("/public/probe/log", json={"message": f"token {pair['access_token']}"})
    output = log_output.getvalue()
    assert "probe says token" in output  # logging reached the buffer...
    for secret in (pair["access_token"], pair["refresh_token"], PASSWORD, "wrong-password"):
        assert secret not in output
    assert "$argon2" not in output


def test_hooks_are_emitted_for_register_login_and_logout(app: Flask) -> None:
    events: list[tuple[str, Any]] = []
    hooks = manager_of(app).hooks
    hooks.register("user.registered", lambda user: events.append(("registered", user["email"])))
    hooks.register(
        "user.logged_in", lambda user, family: events.append(("logged_in", user["email"]))
    )
    hooks.register(
        "user.logged_out", lambda user_id, families: events.append(("logged_out", user_id))
    )
    client = app.test_client()
    user, pair = user_with_tokens(client)
    assert client.post("/userauth/logout", headers=bearer(pair["access_token"])).status_code == 204
    assert events == [
        ("registered", user["email"]),
        ("logged_in", user["email"]),
        ("logged_out", user["id"]),
    ]


def test_responses_never_contain_the_password_hash(app: Flask) -> None:
    client = app.test_client()
    _user, pair = user_with_tokens(client)
    bodies = [
        client.get("/userauth/me", headers=bearer(pair["access_token"])).get_data(as_text=True),
        json.dumps(pair),
    ]
    for body in bodies:
        assert "password" not in body
        assert "$argon2" not in body
