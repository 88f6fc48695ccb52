"""``/openapi.json`` (valid OpenAPI 3.1, every route and action, usable by a client) and the
Swagger UI page at ``/docs``."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from core.http.openapi import DOCS_CSP, openapi_path
from core.testing import AppFactory, bearer, manager_of, problem

# Every route and action of the project, its modules' included (tests/core/test_scaffold.py).
pytestmark = pytest.mark.project_wide


@pytest.fixture
def spec(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.get_json()
    return document


def test_the_document_is_valid_openapi_3_1(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.1")
    validate(spec, cls=OpenAPIV31SpecValidator)


def test_every_route_of_the_app_is_documented(app: Flask, spec: dict[str, Any]) -> None:
    rules = list(app.url_map.iter_rules())
    assert len(rules) > 10
    for rule in rules:
        path, _ = openapi_path(rule)
        methods = {m.lower() for m in rule.methods or ()} - {"head", "options"}
        assert methods <= set(spec["paths"].get(path, {})), rule.rule


def test_every_action_is_documented_with_its_params_and_auth(
    app: Flask, spec: dict[str, Any]
) -> None:
    for action in manager_of(app).actions.all():
        operation = spec["paths"][f"/actions/{action.name}"]["post"]
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        assert schema == action.params
        assert "handler" not in str(operation)
    jwt_action = spec["paths"]["/actions/acts.jwt"]["post"]
    assert jwt_action["security"] == [{"bearerAuth": []}]
    assert spec["paths"]["/actions/acts.either"]["post"]["security"] == [
        {"bearerAuth": []},
        {"apiKeyAuth": []},
    ]
    assert spec["paths"]["/actions/system.ping"]["post"]["security"] == []
    result = spec["paths"]["/actions/system.ping"]["post"]["responses"]["200"]
    assert result["content"]["application/json"]["schema"]["properties"]["result"]["required"] == [
        "pong",
        "time",
    ]


def test_routes_carry_the_security_of_their_policy(spec: dict[str, Any]) -> None:
    paths = spec["paths"]
    assert paths["/userauth/me"]["get"]["security"] == [{"bearerAuth": []}]
    assert paths["/keyauth/whoami"]["get"]["security"] == [{"apiKeyAuth": []}]
    assert paths["/public/login"]["post"]["security"] == []
    assert paths["/userauth/api-keys/{key_id}"]["delete"]["parameters"][0]["name"] == "key_id"
    assert "401" in paths["/userauth/me"]["get"]["responses"]
    problem_doc = spec["components"]["responses"]["Problem"]["content"]
    assert "application/problem+json" in problem_doc


def test_a_client_can_call_an_action_from_the_document(
    client: FlaskClient, spec: dict[str, Any], user: dict[str, Any]
) -> None:
    path = next(
        p
        for p, item in spec["paths"].items()
        if item.get("post", {}).get("operationId") == "action.system.echo"
    )
    operation = spec["paths"][path]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    body = {"greeting": "hello", "numbers": [1, 2, 3]}
    Draft202012Validator(schema).validate(body)
    assert operation["security"] == [{"bearerAuth": []}]

    response = client.post(path, json=body, headers=bearer(user["access_token"]))
    assert response.status_code == 200
    answer = response.get_json()
    response_schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    Draft202012Validator(response_schema).validate(answer)
    assert answer == {"result": body}


def test_the_documented_validation_schema_refuses_what_the_server_refuses(
    client: FlaskClient, spec: dict[str, Any]
) -> None:
    schema = spec["paths"]["/actions/acts.validate"]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]
    body = {"title": "x", "count": 1, "unknown": True}
    assert not Draft202012Validator(schema).is_valid(body)
    problem(client.post("/actions/acts.validate", json=body), 400, "VALIDATION_ERROR")


def test_docs_serve_swagger_ui_from_this_origin(client: FlaskClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    assert page.headers["Content-Security-Policy"] == DOCS_CSP
    html = page.get_data(as_text=True)
    assert 'data-url="/openapi.json"' in html
    assert "https://" not in html  # nothing from a CDN
    for asset in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"):
        assert asset in html
        response = client.get(asset)
        assert response.status_code == 200, asset
        assert len(response.get_data()) > 10_000
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    init = client.get("/docs/swagger-initializer.js")
    assert "SwaggerUIBundle" in init.get_data(as_text=True)
    problem(client.get("/docs/assets/swagger-editor-bundle.js"), 404, "NOT_FOUND")


def test_other_routes_keep_the_deny_all_policy(client: FlaskClient) -> None:
    assert (
        client.get("/openapi.json")
        .headers["Content-Security-Policy"]
        .startswith("default-src 'none'")
    )
    assert "script-src" not in client.get("/openapi.json").headers["Content-Security-Policy"]


def test_docs_can_be_switched_off(make_app: AppFactory) -> None:
    client = make_app({"DOCS_ENABLED": "false"}).test_client()
    problem(client.get("/docs"), 404, "NOT_FOUND")
    assert client.get("/openapi.json").status_code == 200


def test_every_framework_route_documents_its_request_and_response_schemas(
    make_app: AppFactory,
) -> None:
    """The shipped modules and the core routes only (a test module may keep plain routes)."""
    spec = make_app({"MODULES_PACKAGES": "modules"}).test_client().get("/openapi.json").get_json()
    operations = [
        (f"{method.upper()} {path}", operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    ]
    assert len(operations) > 20
    for label, operation in operations:
        responses = operation["responses"]
        successes = {status: answer for status, answer in responses.items() if status[0] == "2"}
        assert successes, label
        assert "2XX" not in successes, label
        for status, answer in successes.items():
            if status != "204":
                schemas = [media["schema"] for media in answer["content"].values()]
                assert schemas, f"{label} {status}"
                assert all(schemas), f"{label} {status}"
        if label.startswith(("POST", "PUT", "PATCH")) and "requestBody" in operation:
            # A typed route without a body has none (NoBody); an untyped one "any object".
            schema = operation["requestBody"]["content"]["application/json"]["schema"]
            assert schema != {"type": "object"}, label
        for status, answer in responses.items():
            if status[0] in "45" or status == "default":
                # A problem, by reference; or a body of its own (readiness answers 503 so).
                problem_ref = answer.get("$ref") == "#/components/responses/Problem"
                assert problem_ref or answer["content"]["application/json"], f"{label} {status}"


def test_contract_shapes_are_in_the_document(spec: dict[str, Any], user: dict[str, Any]) -> None:
    """API.md's names: ``TokenPair`` and ``User`` as components, the list with its cursor."""
    schemas = spec["components"]["schemas"]
    # A real login's answer: API.md's TokenPair plus the device token (issue 22).
    assert set(schemas["LoginAnswer"]["required"]) == set(user)
    device = {"device_token", "device_expires_in"}
    assert set(schemas["TokenPair"]["required"]) == set(user) - device  # what refresh answers
    assert set(schemas["User"]["required"]) == set(user["user"])
    assert "password_hash" not in schemas["User"]["properties"]
    keys = spec["paths"]["/userauth/api-keys"]["get"]
    assert {p["name"] for p in keys["parameters"]} == {"limit", "cursor"}
    page = keys["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert set(schemas[page.rpartition("/")[2]]["required"]) == {"items", "next_cursor"}
    created = spec["paths"]["/userauth/api-keys"]["post"]["responses"]["201"]
    assert created["content"]["application/json"]["schema"]["$ref"].endswith("/CreatedKey")
    assert "403" in spec["paths"]["/userauth/api-keys"]["post"]["responses"]
    register = spec["paths"]["/public/register"]["post"]["responses"]
    assert "EMAIL_TAKEN" in register["409"]["description"]
    # An action's declared errors (notes.delete: errors: {NOT_FOUND: 404}).
    delete = spec["paths"]["/actions/notes.delete"]["post"]["responses"]
    assert delete["404"]["$ref"] == "#/components/responses/Problem"
    assert "`NOT_FOUND`" in delete["404"]["description"]
    assert "404" not in spec["paths"]["/actions/notes.create"]["post"]["responses"]
