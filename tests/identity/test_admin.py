"""``POST /userauth/admin/maintenance``: admins switch maintenance mode for every instance."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.managers.state import maintenance
from core.testing import AppFactory, bearer, problem
from modules.api_keys.testing import create_api_key
from modules.auth.testing import admin_tokens, user_with_tokens
from tests.support.servers import wait_until

PATH = "/userauth/admin/maintenance"
MESSAGE = "back soon"


@pytest.fixture
def admin(app: Flask, client: FlaskClient) -> str:
    token: str = admin_tokens(app, client)["access_token"]
    return token


@pytest.fixture
def other(make_app: AppFactory, app: Flask) -> FlaskClient:
    """A second running instance on the same stores."""
    return make_app().test_client()


def switch(client: FlaskClient, token: str, body: Any) -> Any:
    return client.post(PATH, json=body, headers=bearer(token))


def echo(client: FlaskClient) -> Any:
    return client.post("/public/probe/echo", json={"ping": 1})


def in_maintenance(client: FlaskClient) -> bool:
    return bool(echo(client).status_code == 503)


def test_an_admin_switches_maintenance_on_for_every_instance(
    client: FlaskClient, other: FlaskClient, admin: str
) -> None:
    assert echo(other).status_code == 200  # the other instance has cached "off"

    response = switch(client, admin, {"enabled": True, "message": MESSAGE})
    assert response.status_code == 200
    assert response.get_json() == {"enabled": True, "message": MESSAGE}

    wait_until(lambda: in_maintenance(other), what="503 on the other instance")
    for instance in (other, client):
        assert problem(echo(instance), 503, "MAINTENANCE")["detail"] == MESSAGE
        login = instance.post("/public/login", json={"email": "a@example.com", "password": "x"})
        assert problem(login, 503, "MAINTENANCE")["detail"] == MESSAGE
        me = instance.get("/userauth/me", headers=bearer(admin))
        assert problem(me, 503, "MAINTENANCE")["detail"] == MESSAGE
        problem(instance.get("/keyauth/whoami"), 503, "MAINTENANCE")
        problem(instance.get("/userauth/api-keys", headers=bearer(admin)), 503, "MAINTENANCE")


def test_health_stays_up_during_maintenance(
    client: FlaskClient, other: FlaskClient, admin: str
) -> None:
    assert switch(client, admin, {"enabled": True, "message": MESSAGE}).status_code == 200
    wait_until(lambda: in_maintenance(other), what="maintenance on")
    for instance in (client, other):
        response = instance.get("/health/live")
        assert response.status_code == 200
        assert response.get_json() == {"status": "ok"}


def test_the_admin_route_works_during_maintenance_and_switching_off_restores_service(
    client: FlaskClient, other: FlaskClient, admin: str
) -> None:
    assert switch(client, admin, {"enabled": True, "message": MESSAGE}).status_code == 200
    wait_until(lambda: in_maintenance(other), what="maintenance on")

    # Changing the message while on, then switching off, both from the other instance.
    response = switch(other, admin, {"enabled": True, "message": "longer than planned"})
    assert response.status_code == 200
    assert response.get_json() == {"enabled": True, "message": "longer than planned"}
    wait_until(
        lambda: echo(client).get_json().get("detail") == "longer than planned",
        what="the new message on the first instance",
    )

    response = switch(other, admin, {"enabled": False})
    assert response.status_code == 200
    assert response.get_json() == {"enabled": False, "message": None}

    wait_until(lambda: not in_maintenance(client), what="maintenance off on the first instance")
    for instance in (client, other):
        assert echo(instance).status_code == 200
        assert echo(instance).get_json() == {"received": {"ping": 1}}
        assert instance.get("/userauth/me", headers=bearer(admin)).status_code == 200


def test_maintenance_on_without_a_message_uses_the_default_message(
    client: FlaskClient, admin: str
) -> None:
    response = switch(client, admin, {"enabled": True})
    assert response.status_code == 200
    assert response.get_json() == {"enabled": True, "message": maintenance.DEFAULT_MESSAGE}
    assert problem(echo(client), 503, "MAINTENANCE")["detail"] == maintenance.DEFAULT_MESSAGE


def test_switching_to_the_current_mode_answers_the_current_mode(
    client: FlaskClient, admin: str
) -> None:
    response = switch(client, admin, {"enabled": False})
    assert response.status_code == 200
    assert response.get_json() == {"enabled": False, "message": None}
    assert echo(client).status_code == 200
    for _ in range(2):
        response = switch(client, admin, {"enabled": True, "message": MESSAGE})
        assert response.get_json() == {"enabled": True, "message": MESSAGE}


def test_a_user_without_the_admin_role_gets_403_and_changes_nothing(
    client: FlaskClient, admin: str
) -> None:
    _, pair = user_with_tokens(client)
    for enabled in (True, False):
        response = switch(client, pair["access_token"], {"enabled": enabled, "message": "mine"})
        problem(response, 403, "FORBIDDEN")
    assert echo(client).status_code == 200

    # Nor can a non-admin switch it off once an admin has switched it on.
    switch(client, admin, {"enabled": True, "message": MESSAGE})
    problem(switch(client, pair["access_token"], {"enabled": False}), 403, "FORBIDDEN")
    assert problem(echo(client), 503, "MAINTENANCE")["detail"] == MESSAGE


def test_the_admin_route_needs_a_user_token(client: FlaskClient, admin: str) -> None:
    key = create_api_key(client, admin, ["admin"])
    problem(client.post(PATH, json={"enabled": True}), 401, "AUTH_REQUIRED")
    problem(
        client.post(PATH, json={"enabled": True}, headers={"X-API-Key": key["key"]}),
        401,
        "AUTH_REQUIRED",
    )
    problem(client.post(PATH, json={"enabled": True}, headers=bearer("nope")), 401, "TOKEN_INVALID")
    assert echo(client).status_code == 200


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, ["/enabled"]),
        ({"enabled": "true"}, ["/enabled"]),
        ({"enabled": 1}, ["/enabled"]),
        ({"enabled": None}, ["/enabled"]),
        ({"enabled": True, "message": ""}, ["/message"]),
        ({"enabled": True, "message": 5}, ["/message"]),
        ({"enabled": True, "message": "x" * 501}, ["/message"]),
        ({"enabled": "yes", "message": ["a"]}, ["/enabled", "/message"]),
    ],
)
def test_an_invalid_body_is_400_validation_error_naming_the_fields(
    client: FlaskClient, admin: str, body: dict[str, Any], fields: list[str]
) -> None:
    body_problem = problem(switch(client, admin, body), 400, "VALIDATION_ERROR")
    assert [error["field"] for error in body_problem["errors"]] == fields
    assert echo(client).status_code == 200  # nothing was switched


def test_a_body_that_is_not_an_object_is_refused(client: FlaskClient, admin: str) -> None:
    problem(switch(client, admin, [True]), 400, "VALIDATION_ERROR")
    response = client.post(PATH, data="{", content_type="application/json", headers=bearer(admin))
    problem(response, 400, "INVALID_JSON")
    assert echo(client).status_code == 200


def test_a_message_of_500_characters_is_accepted(client: FlaskClient, admin: str) -> None:
    response = switch(client, admin, {"enabled": True, "message": "x" * 500})
    assert response.status_code == 200
    assert response.get_json()["message"] == "x" * 500
