"""Params validation: every error at once, each with the JSON pointer of the field at fault."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from core.testing import problem

VALID = {"title": "hello", "count": 2}


def errors_of(client: FlaskClient, body: Any) -> list[dict[str, str]]:
    response = client.post("/actions/acts.validate", json=body)
    errors: list[dict[str, str]] = problem(response, 400, "VALIDATION_ERROR")["errors"]
    return errors


def fields(errors: list[dict[str, str]]) -> list[str]:
    return [error["field"] for error in errors]


def test_valid_params_reach_the_handler_with_top_level_defaults_filled_in(
    client: FlaskClient,
) -> None:
    response = client.post("/actions/acts.validate", json=VALID)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"result": {"title": "hello", "count": 2, "kind": "a"}}


def test_a_missing_required_field_points_at_the_field(client: FlaskClient) -> None:
    assert errors_of(client, {"title": "hello"}) == [{"field": "/count", "message": "is required"}]


def test_every_missing_field_is_reported(client: FlaskClient) -> None:
    assert fields(errors_of(client, {})) == ["/count", "/title"]


def test_a_wrong_type_points_at_the_field(client: FlaskClient) -> None:
    errors = errors_of(client, {**VALID, "count": "two"})
    assert errors == [{"field": "/count", "message": "must be an integer"}]


def test_a_nested_field_has_the_full_path(client: FlaskClient) -> None:
    errors = errors_of(client, {**VALID, "meta": {"level": "high"}})
    assert errors == [{"field": "/meta/level", "message": "must be an integer"}]
    missing = errors_of(client, {**VALID, "meta": {}})
    assert missing == [{"field": "/meta/level", "message": "is required"}]


def test_unknown_fields_are_refused_each_at_its_own_path(client: FlaskClient) -> None:
    errors = errors_of(client, {**VALID, "colour": "red", "meta": {"level": 1, "extra": True}})
    assert errors == [
        {"field": "/colour", "message": "is not allowed"},
        {"field": "/meta/extra", "message": "is not allowed"},
    ]


def test_an_array_item_is_named_by_its_index(client: FlaskClient) -> None:
    errors = errors_of(client, {**VALID, "tags": ["ok", 3, "fine", None]})
    assert fields(errors) == ["/tags/1", "/tags/3"]
    assert {e["message"] for e in errors} == {"must be a string"}


def test_constraint_messages_describe_the_rule(client: FlaskClient) -> None:
    errors = errors_of(client, {"title": "", "count": 0, "kind": "z"})
    assert errors == [
        {"field": "/count", "message": "must be at least 1"},
        {"field": "/kind", "message": 'must be one of "a", "b"'},
        {"field": "/title", "message": "must not be empty"},
    ]


def test_a_field_name_with_a_slash_is_escaped_in_the_pointer(client: FlaskClient) -> None:
    assert fields(errors_of(client, {**VALID, "a/b": 1})) == ["/a~1b"]


def test_all_errors_come_in_one_answer(client: FlaskClient) -> None:
    errors = errors_of(client, {"count": "x", "tags": [1], "meta": {}, "zzz": 1})
    assert fields(errors) == ["/count", "/meta/level", "/tags/0", "/title", "/zzz"]


def test_an_action_whose_schema_allows_more_accepts_any_field(client: FlaskClient) -> None:
    body = {"anything": {"nested": [1, 2]}, "else": None}
    response = client.post("/actions/acts.open", json=body)
    assert response.get_json() == {"result": body}


def test_an_action_without_params_accepts_no_field(client: FlaskClient) -> None:
    assert client.post("/actions/acts.public").status_code == 200
    response = client.post("/actions/acts.public", json={"x": 1})
    assert problem(response, 400, "VALIDATION_ERROR")["errors"] == [
        {"field": "/x", "message": "is not allowed"}
    ]


def test_a_body_that_is_not_an_object_is_refused_by_the_pipeline(client: FlaskClient) -> None:
    problem(client.post("/actions/acts.validate", json=[1, 2]), 400, "VALIDATION_ERROR")
    response = client.post(
        "/actions/acts.validate", data="{", headers={"Content-Type": "application/json"}
    )
    problem(response, 400, "INVALID_JSON")
