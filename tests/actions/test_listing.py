"""``GET /actions``: all actions and their auth for anyone; with a credential, what it may call."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.testing import bearer, manager_of, problem
from tests.actions.conftest import key_header

# Every action of the project, its modules' included (tests/core/test_scaffold.py).
pytestmark = pytest.mark.project_wide

ACTS = {
    "acts.public",
    "acts.jwt",
    "acts.key",
    "acts.either",
    "acts.admin",
    "acts.scoped",
    "acts.mixed",
    "acts.validate",
    "acts.open",
    "acts.conflict",
    "acts.crash",
    "acts.bad-result",
    "acts.quiet",
    "acts.nap",
    "acts.limited",
}
SYSTEM = {"system.ping", "system.echo"}


def listed(client: FlaskClient, **headers: str) -> dict[str, dict[str, Any]]:
    response = client.get("/actions", headers=headers)
    assert response.status_code == 200, response.get_json()
    return {item["name"]: item for item in response.get_json()["items"]}


def test_without_a_credential_every_action_is_listed_with_its_auth(
    app: Flask, client: FlaskClient
) -> None:
    items = listed(client)
    # Every declared action, whatever modules the project has; the framework's own included.
    declared = {action.name for action in manager_of(app).actions.all()}
    assert set(items) == declared
    assert declared >= ACTS | SYSTEM
    assert items["acts.mixed"] == {
        "name": "acts.mixed",
        "description": "Admin users, or keys with acts:write.",
        "auth": "jwt_or_api_key",
        "roles": ["admin"],
        "scopes": ["acts:write"],
        "params": {"type": "object", "additionalProperties": False},
        "rate_limit": None,
    }
    assert items["acts.limited"]["rate_limit"] == "1000/second"


def test_the_listing_never_shows_handlers(client: FlaskClient) -> None:
    text = client.get("/actions").get_data(as_text=True)
    assert "handler" not in text
    assert "whoami" not in text
    assert "core.system_actions" not in text


def test_params_are_the_enforced_schema(client: FlaskClient) -> None:
    params = listed(client)["acts.validate"]["params"]
    assert params["additionalProperties"] is False
    assert params["properties"]["meta"]["additionalProperties"] is False
    assert params["required"] == ["title", "count"]


def test_a_user_sees_only_what_it_may_call(client: FlaskClient, user: dict[str, Any]) -> None:
    items = listed(client, **bearer(user["access_token"]))
    assert "acts.jwt" in items
    assert "acts.public" in items
    assert "acts.either" in items
    assert "system.echo" in items
    assert "acts.admin" not in items  # role admin
    assert "acts.mixed" not in items
    assert "acts.key" not in items  # API keys only
    assert "acts.scoped" not in items


def test_an_admin_also_sees_admin_actions(client: FlaskClient, admin: dict[str, Any]) -> None:
    items = listed(client, **bearer(admin["access_token"]))
    assert {"acts.admin", "acts.mixed", "acts.jwt"} <= set(items)
    assert "acts.key" not in items


def test_a_key_sees_only_what_its_scopes_allow(client: FlaskClient, admin: dict[str, Any]) -> None:
    items = listed(client, **key_header(client, admin, ["acts:write"]))
    assert {"acts.key", "acts.scoped", "acts.mixed", "acts.either", "acts.public"} <= set(items)
    assert "acts.jwt" not in items
    assert "system.echo" not in items
    unscoped = listed(client, **key_header(client, admin, []))
    assert "acts.key" in unscoped
    assert "acts.scoped" not in unscoped
    assert "acts.mixed" not in unscoped


def test_a_bad_credential_is_401_not_an_anonymous_listing(client: FlaskClient) -> None:
    problem(client.get("/actions", headers=bearer("garbage")), 401, "TOKEN_INVALID")
    problem(client.get("/actions", headers={"X-API-Key": "pbk_x.y"}), 401, "API_KEY_INVALID")
