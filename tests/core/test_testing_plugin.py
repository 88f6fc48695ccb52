"""The ``core.testing`` fixtures module authors get: each one works against the real servers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import socketio
from flask.testing import FlaskClient

from core.testing import Client, bearer, problem
from core.testing.plugin import module_plugins


def test_user_and_admin_are_logged_in_with_their_roles(
    client: FlaskClient, user: dict[str, Any], admin: dict[str, Any]
) -> None:
    me = client.get("/userauth/me", headers=bearer(user["access_token"])).get_json()["user"]
    assert me["roles"] == ["user"]
    boss = client.get("/userauth/me", headers=bearer(admin["access_token"])).get_json()["user"]
    assert set(boss["roles"]) == {"admin", "user"}


def test_api_key_calls_keyauth_routes(client: FlaskClient, api_key: dict[str, Any]) -> None:
    answer = client.get("/keyauth/whoami", headers={"X-API-Key": api_key["key"]})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json() == {"key_id": api_key["id"], "name": api_key["name"], "scopes": []}
    problem(client.get("/keyauth/whoami"), 401, "API_KEY_REQUIRED")


def test_socket_client_is_connected_as_user(socket_client: Client, user: dict[str, Any]) -> None:
    created = socket_client.call("create_room", {"name": "plugin-room"})
    assert created["ok"] is True, created
    assert created["room"]["owner"] == user["user"]["id"]


def test_more_socket_clients_connect_to_the_live_server(
    live_server: str, socket_clients: Callable[[], Client]
) -> None:
    anonymous = socket_clients()
    with pytest.raises(socketio.exceptions.ConnectionError):
        anonymous.connect(live_server, None)
    assert anonymous.connect_error["code"] == "AUTH_REQUIRED"


def test_each_enabled_modules_plugin_is_loaded_and_may_extend_app_env(
    request: pytest.FixtureRequest, app_env: dict[str, str]
) -> None:
    """core.testing loads ``modules/<name>/testing.py`` of every enabled module, without naming
    one; the auth module's plugin makes hashing cheap for every test app."""
    assert module_plugins() == ["modules.api_keys.testing", "modules.auth.testing"]
    assert module_plugins({"MODULES_DISABLED": "auth"}) == ["modules.api_keys.testing"]
    assert request.config.pluginmanager.has_plugin("modules.auth.testing")
    assert app_env["ARGON2_TIME_COST"] == "1"
