"""Typed routes (``core.http.typed.typed``): validation at the edge with the actions' problem
shape, answers serialised through their model, and the declaration in ``/openapi.json``.

The routes are the test module ``tests/support/modules/typed_probe``."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from core.testing import problem

WIDGETS = "/public/typed/widgets"


def _errors(response: Any) -> list[dict[str, str]]:
    errors: list[dict[str, str]] = problem(response, 400, "VALIDATION_ERROR")["errors"]
    return errors


def test_a_valid_body_reaches_the_view_as_the_model_and_the_answer_goes_through_its_model(
    client: FlaskClient,
) -> None:
    response = client.post(WIDGETS, json={"name": "cog", "size": 3, "tags": [{"label": "x"}]})

    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert response.get_json() == {
        "name": "cog",
        "size": 3,
        "shape": "round",
        "tags": [{"label": "x"}],
        "created_at": "2024-05-01T12:00:00Z",
    }


def test_every_body_error_is_listed_with_a_json_pointer_in_the_actions_words(
    client: FlaskClient,
) -> None:
    body = {
        "name": "",
        "size": "3",
        "shape": "oval",
        "tags": [{"label": "ok"}, {"label": 5}],
        "colour": "red",
    }

    errors = _errors(client.post(WIDGETS, json=body))

    assert errors == [
        {"field": "/colour", "message": "is not allowed"},
        {"field": "/name", "message": "must not be empty"},
        {"field": "/shape", "message": 'must be one of "round", "square"'},
        {"field": "/size", "message": "must be an integer"},
        {"field": "/tags/1/label", "message": "must be a string"},
    ]


def test_a_missing_body_lists_the_required_fields(client: FlaskClient) -> None:
    errors = _errors(client.post(WIDGETS))

    assert errors == [
        {"field": "/name", "message": "is required"},
        {"field": "/size", "message": "is required"},
    ]


def test_bounds_are_worded_like_the_actions(client: FlaskClient) -> None:
    body = {"name": "x" * 11, "size": 101, "tags": [{"label": "a"}] * 4}

    errors = _errors(client.post(WIDGETS, json=body))

    assert errors == [
        {"field": "/name", "message": "must be at most 10 characters long"},
        {"field": "/size", "message": "must be at most 100"},
        {"field": "/tags", "message": "must have at most 3 items"},
    ]


def test_json_types_are_strict_in_the_body(client: FlaskClient) -> None:
    errors = _errors(client.post(WIDGETS, json={"name": "cog", "size": 2.5}))

    assert errors == [{"field": "/size", "message": "must be an integer"}]
    integral = client.post(WIDGETS, json={"name": "cog", "size": 2.0})
    assert integral.status_code == 201
    assert integral.get_json()["size"] == 2


def test_a_declared_problem_raised_by_the_view_is_answered(client: FlaskClient) -> None:
    problem(client.post(WIDGETS, json={"name": "taken", "size": 1}), 409, "WIDGET_EXISTS")


def test_the_query_string_is_parsed_into_its_model(client: FlaskClient) -> None:
    response = client.get(f"{WIDGETS}?limit=5&color=red&color=blue&exact=true")

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"limit": 5, "color": ["red", "blue"], "exact": True}
    assert client.get(WIDGETS).get_json() == {"limit": 10, "color": [], "exact": False}


def test_a_bad_query_string_is_a_validation_problem(client: FlaskClient) -> None:
    errors = _errors(client.get(f"{WIDGETS}?limit=0&exact=maybe&page=2"))

    assert errors == [
        {"field": "/exact", "message": "must be true or false"},
        {"field": "/limit", "message": "must be at least 1"},
        {"field": "/page", "message": "is not allowed"},
    ]


def test_a_route_without_a_response_model_answers_204_without_a_body(
    client: FlaskClient,
) -> None:
    response = client.delete(f"{WIDGETS}/cog")

    assert response.status_code == 204
    assert response.get_data() == b""


def test_fields_the_response_model_does_not_declare_never_leave(client: FlaskClient) -> None:
    response = client.get("/public/typed/private")

    assert response.get_json() == {"public": "yes"}


def test_an_undocumented_status_is_a_server_error_not_a_silent_answer(
    client: FlaskClient,
) -> None:
    problem(client.get("/public/typed/undocumented"), 500, "INTERNAL_ERROR")


def test_the_document_describes_body_query_answers_and_problems(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    schemas = spec["components"]["schemas"]
    create = spec["paths"][WIDGETS]["post"]
    find = spec["paths"][WIDGETS]["get"]
    delete = spec["paths"][WIDGETS + "/{name}"]["delete"]

    body_ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert create["requestBody"]["required"] is True
    assert schemas[body_ref.rpartition("/")[2]]["additionalProperties"] is False
    answer = create["responses"]["201"]["content"]["application/json"]["schema"]["$ref"]
    assert set(schemas[answer.rpartition("/")[2]]["required"]) >= {"name", "created_at"}
    assert create["responses"]["409"]["$ref"] == "#/components/responses/Problem"
    assert "WIDGET_EXISTS" in create["responses"]["409"]["description"]
    assert "VALIDATION_ERROR" in create["responses"]["400"]["description"]
    assert "2XX" not in create["responses"]
    parameters = {p["name"]: p for p in find["parameters"]}
    assert parameters["limit"] == {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": parameters["limit"]["schema"],
    }
    assert parameters["limit"]["schema"]["maximum"] == 50
    assert parameters["color"]["schema"]["type"] == "array"
    assert set(delete["responses"]) >= {"204", "default"}
    assert "content" not in delete["responses"]["204"]
    assert "requestBody" not in delete


def test_the_documented_schemas_accept_the_real_answers_and_refuse_what_the_server_refuses(
    client: FlaskClient,
) -> None:
    spec = client.get("/openapi.json").get_json()
    registry: Registry[Any] = Registry().with_resource(
        "urn:spec", Resource.from_contents(spec, default_specification=DRAFT202012)
    )
    create = spec["paths"][WIDGETS]["post"]

    def validator(schema: dict[str, Any]) -> Draft202012Validator:
        ref = "urn:spec" + schema["$ref"]
        return Draft202012Validator({"$ref": ref}, registry=registry)

    request_schema = validator(create["requestBody"]["content"]["application/json"]["schema"])
    answer_schema = validator(create["responses"]["201"]["content"]["application/json"]["schema"])
    good = {"name": "cog", "size": 3}
    bad = {"name": "cog", "size": 3, "extra": 1}
    assert request_schema.is_valid(good)
    assert not request_schema.is_valid(bad)
    assert _errors(client.post(WIDGETS, json=bad))
    answer = client.post(WIDGETS, json=good).get_json()
    assert list(answer_schema.iter_errors(answer)) == []
