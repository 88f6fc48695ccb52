"""A JSON content type with an empty body is malformed JSON (400 INVALID_JSON) on every route
that takes a body and on every action, for a caller its auth lets through; no body and no
content type still means "no body"."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.testing import bearer, problem
from modules.api_keys.testing import create_api_key

BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")
EMPTY_JSON = {"data": b"", "content_type": "application/json"}


def _credentials(client: FlaskClient, admin: dict[str, Any]) -> dict[str, str]:
    """An admin's access token and an API key: whichever the route's policy asks for."""
    key = create_api_key(client, admin["access_token"], scopes=["notes:read"])
    return {**bearer(admin["access_token"]), "X-API-Key": key["key"]}


#: ``<name>``, ``<int:name>``, ``<string(length=2):name>`` in a rule.
_ARGUMENT = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")


def _concrete(app: Flask, rule: Any) -> str:
    values = {
        name: 1 if converter in ("int", "float") else "x"
        for converter, name in _ARGUMENT.findall(rule.rule)
    }
    path: str = app.url_map.bind("localhost").build(rule.endpoint, values)
    return path


@pytest.mark.project_wide
def test_an_empty_json_body_is_invalid_json_on_every_route(
    app: Flask, client: FlaskClient, admin: dict[str, Any]
) -> None:
    headers = _credentials(client, admin)
    routes = [
        (method, _concrete(app, rule))
        for rule in app.url_map.iter_rules()
        for method in sorted(set(BODY_METHODS) & (rule.methods or set()))
        if rule.endpoint != "actions.execute"  # every action below, by its real name
    ]
    assert len(routes) > 5
    for method, path in routes:
        response = client.open(path, method=method, headers=headers, **EMPTY_JSON)
        assert response.status_code == 400, (method, path, response.get_json())
        problem(response, 400, "INVALID_JSON")


@pytest.mark.project_wide
def test_an_empty_json_body_is_invalid_json_on_every_action(
    client: FlaskClient, admin: dict[str, Any]
) -> None:
    headers = _credentials(client, admin)
    names = [item["name"] for item in client.get("/actions").get_json()["items"]]
    assert len(names) > 3
    for name in names:
        response = client.post(f"/actions/{name}", headers=headers, **EMPTY_JSON)
        assert response.status_code == 400, (name, response.get_json())
        body = problem(response, 400, "INVALID_JSON")
        assert "empty" in body["detail"]


def test_no_body_without_a_content_type_is_still_no_body(client: FlaskClient) -> None:
    response = client.post("/actions/system.ping")
    assert response.status_code == 200, response.get_json()
