"""``flask users ...`` and ``flask api-keys ...``, run the way the Flask CLI runs them: on an app
built without start-up work, against the same stores as a running server."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from click.testing import Result
from flask import Flask
from flask.testing import FlaskClient

from core.testing import AppFactory, bearer, problem
from modules.auth.testing import PASSWORD, register

KEY_LINE = re.compile(r"^(pbk_[A-Za-z0-9]+)\.(\S+)$", re.MULTILINE)


@pytest.fixture
def cli_app(make_app: AppFactory) -> Flask:
    """The app `flask --app app ...` builds: no start-up work (no index creation, no pub/sub)."""
    return make_app(start=False)


@pytest.fixture
def server(make_app: AppFactory, cli_app: Flask) -> FlaskClient:
    """A running instance on the same stores, built after the CLI app."""
    return make_app().test_client()


def flask(app: Flask, *args: str, input: str | None = None) -> Result:
    result: Result = app.test_cli_runner().invoke(args=list(args), input=input)
    return result


def unique(stem: str) -> str:
    return f"{stem}{uuid.uuid4().hex[:8]}"


def create_admin(app: Flask, email: str, username: str, password: str = PASSWORD) -> Result:
    return flask(
        app,
        "users",
        "create-admin",
        "--email",
        email,
        "--username",
        username,
        "--password",
        password,
    )


def login(client: FlaskClient, email: str, password: str = PASSWORD) -> Any:
    return client.post("/public/login", json={"email": email, "password": password})


def me(client: FlaskClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = login(client, email, password)
    assert response.status_code == 200, response.get_json()
    me_response = client.get("/userauth/me", headers=bearer(response.get_json()["access_token"]))
    assert me_response.status_code == 200
    user: dict[str, Any] = me_response.get_json()["user"]
    return user


# -- users create-admin -----------------------------------------------------------------------


def test_create_admin_creates_a_user_with_roles_admin_and_user_who_can_log_in(
    cli_app: Flask, server: FlaskClient
) -> None:
    email, username = f"{unique('root')}@example.com", unique("root_")
    result = create_admin(cli_app, email, username)
    assert result.exit_code == 0, result.output
    assert email in result.output
    assert PASSWORD not in result.output

    user = me(server, email)
    assert user["email"] == email
    assert user["username"] == username
    assert user["roles"] == ["admin", "user"]
    assert re.search(rf"id={user['id']}\b", result.output)
    # The admin can use admin routes at once.
    pair = login(server, email).get_json()
    assert server.get("/userauth/api-keys", headers=bearer(pair["access_token"])).status_code == 200


def test_create_admin_works_before_any_server_has_started(make_app: AppFactory) -> None:
    """On a brand-new database (no indexes yet), the CLI alone keeps emails unique."""
    cli_app = make_app(start=False)
    email = f"{unique('first')}@example.com"
    assert create_admin(cli_app, email, unique("first_")).exit_code == 0
    again = create_admin(cli_app, email.upper(), unique("other_"))
    assert again.exit_code != 0
    assert "EMAIL_TAKEN" in again.output


def test_create_admin_prompts_for_what_is_missing(cli_app: Flask, server: FlaskClient) -> None:
    email, username = f"{unique('asked')}@example.com", unique("asked_")
    result = flask(
        cli_app,
        "users",
        "create-admin",
        "--email",
        email,
        input=f"{username}\n{PASSWORD}\n{PASSWORD}\n",
    )
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output  # hidden input is not echoed
    assert me(server, email)["username"] == username


def test_create_admin_with_a_taken_email_fails_clearly(cli_app: Flask, server: FlaskClient) -> None:
    existing = register(server)
    result = create_admin(cli_app, existing["email"], unique("admin_"))
    assert result.exit_code != 0
    assert "EMAIL_TAKEN" in result.output
    assert "already registered" in result.output
    assert "Traceback" not in result.output
    assert me(server, existing["email"])["roles"] == ["user"]  # the existing user is untouched


def test_create_admin_with_a_taken_username_fails_clearly(
    cli_app: Flask, server: FlaskClient
) -> None:
    existing = register(server)
    result = create_admin(cli_app, f"{unique('x')}@example.com", existing["username"])
    assert result.exit_code != 0
    assert "USERNAME_TAKEN" in result.output


@pytest.mark.parametrize(
    ("email", "username", "password", "fields"),
    [
        ("not-an-email", "good_name", PASSWORD, ["email"]),
        ("ok@example.com", "no", PASSWORD, ["username"]),
        ("ok@example.com", "good_name", "short", ["password"]),
        ("nope", "a b", "short", ["email", "username", "password"]),
    ],
)
def test_create_admin_with_invalid_input_names_the_field(
    cli_app: Flask, server: FlaskClient, email: str, username: str, password: str, fields: list[str]
) -> None:
    result = create_admin(cli_app, email, username, password)
    assert result.exit_code != 0
    for field in fields:
        assert f"{field}: " in result.output, result.output
    assert "Traceback" not in result.output
    assert login(server, email, password).status_code in (400, 401)


# -- users set-roles --------------------------------------------------------------------------


def test_set_roles_replaces_the_roles_seen_by_a_new_login(
    cli_app: Flask, server: FlaskClient
) -> None:
    user = register(server)
    result = flask(cli_app, "users", "set-roles", user["email"], "auditor", "admin")
    assert result.exit_code == 0, result.output
    assert "admin, auditor" in result.output
    assert me(server, user["email"])["roles"] == ["admin", "auditor"]

    result = flask(cli_app, "users", "set-roles", user["email"].upper(), "user")
    assert result.exit_code == 0, result.output
    assert me(server, user["email"])["roles"] == ["user"]


def test_set_roles_for_an_unknown_email_fails(cli_app: Flask) -> None:
    result = flask(cli_app, "users", "set-roles", "nobody@example.com", "admin")
    assert result.exit_code != 0
    assert "NOT_FOUND" in result.output
    assert "nobody@example.com" in result.output


def test_set_roles_rejects_invalid_role_names_and_keeps_the_old_roles(
    cli_app: Flask, server: FlaskClient
) -> None:
    user = register(server)
    result = flask(cli_app, "users", "set-roles", user["email"], "admin", "Not A Role")
    assert result.exit_code != 0
    assert "roles: " in result.output
    assert me(server, user["email"])["roles"] == ["user"]


def test_set_roles_needs_at_least_one_role(cli_app: Flask, server: FlaskClient) -> None:
    user = register(server)
    result = flask(cli_app, "users", "set-roles", user["email"])
    assert result.exit_code != 0
    assert me(server, user["email"])["roles"] == ["user"]


# -- api-keys ---------------------------------------------------------------------------------


def create_key(app: Flask, *args: str) -> tuple[Result, str]:
    result = flask(app, "api-keys", "create", *args)
    assert result.exit_code == 0, result.output
    keys = KEY_LINE.findall(result.stdout)
    assert len(keys) == 1, result.output
    prefix, secret = keys[0]
    return result, f"{prefix}.{secret}"


def whoami(client: FlaskClient, key: str) -> Any:
    return client.get("/keyauth/whoami", headers={"X-API-Key": key})


def test_api_keys_create_prints_a_working_key_once_with_every_scope(
    cli_app: Flask, server: FlaskClient
) -> None:
    result, key = create_key(cli_app, "--name", "nightly-export", "--scope", "a", "--scope", "b")
    assert result.stdout.count(key) == 1
    match = re.search(r"id=(\w+) prefix=(\w+) scopes=a,b", result.stdout)
    assert match, result.stdout
    assert key.startswith(match.group(2) + ".")

    response = whoami(server, key)
    assert response.status_code == 200
    assert response.get_json() == {
        "key_id": match.group(1),
        "name": "nightly-export",
        "scopes": ["a", "b"],
    }


def test_api_keys_create_with_expiry_sets_it(cli_app: Flask, server: FlaskClient) -> None:
    _, key = create_key(cli_app, "--name", "temp", "--expires-in-days", "2")
    assert whoami(server, key).status_code == 200
    listing = flask(cli_app, "api-keys", "list")
    assert re.search(r"expires=\d{4}-\d\d-\d\dT", listing.output), listing.output


def test_api_keys_create_rejects_invalid_input_naming_the_field(cli_app: Flask) -> None:
    bad_scope = flask(cli_app, "api-keys", "create", "--name", "svc", "--scope", "Not Valid")
    assert bad_scope.exit_code != 0
    assert "scopes" in bad_scope.output, bad_scope.output
    bad_expiry = flask(cli_app, "api-keys", "create", "--name", "svc", "--expires-in-days", "0")
    assert bad_expiry.exit_code != 0
    assert "expires_in_days" in bad_expiry.output, bad_expiry.output
    assert "Traceback" not in bad_scope.output + bad_expiry.output
    assert KEY_LINE.search(bad_scope.output + bad_expiry.output) is None
    assert flask(cli_app, "api-keys", "list").output == ""


def test_api_keys_list_shows_the_prefix_but_never_the_secret(cli_app: Flask) -> None:
    _, first = create_key(cli_app, "--name", "first", "--scope", "notes:read")
    _, second = create_key(cli_app, "--name", "second")
    result = flask(cli_app, "api-keys", "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 2
    for key, name, line in ((first, "first", lines[0]), (second, "second", lines[1])):
        prefix, _, secret = key.partition(".")
        assert prefix in line
        assert name in line
        assert secret not in result.output
    assert "scopes=notes:read" in lines[0]


def test_api_keys_revoke_makes_the_key_stop_working(cli_app: Flask, server: FlaskClient) -> None:
    result, key = create_key(cli_app, "--name", "doomed", "--scope", "a")
    key_id = re.search(r"id=(\w+)", result.stdout).group(1)  # type: ignore[union-attr]
    assert whoami(server, key).status_code == 200  # validated and cached by the server

    revoked = flask(cli_app, "api-keys", "revoke", key_id)
    assert revoked.exit_code == 0, revoked.output
    assert key_id in revoked.output
    problem(whoami(server, key), 401, "API_KEY_INVALID")
    assert key.partition(".")[0] not in flask(cli_app, "api-keys", "list").output


@pytest.mark.parametrize("key_id", ["0123456789abcdef01234567", "not-an-id"])
def test_api_keys_revoke_of_an_unknown_id_fails(cli_app: Flask, key_id: str) -> None:
    result = flask(cli_app, "api-keys", "revoke", key_id)
    assert result.exit_code != 0
    assert "NOT_FOUND" in result.output
    assert "Traceback" not in result.output


def test_api_keys_revoke_twice_fails_the_second_time(cli_app: Flask) -> None:
    result, _ = create_key(cli_app, "--name", "once")
    key_id = re.search(r"id=(\w+)", result.stdout).group(1)  # type: ignore[union-attr]
    assert flask(cli_app, "api-keys", "revoke", key_id).exit_code == 0
    again = flask(cli_app, "api-keys", "revoke", key_id)
    assert again.exit_code != 0
    assert "NOT_FOUND" in again.output
