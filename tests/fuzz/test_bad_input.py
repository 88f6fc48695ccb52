"""Bad JSON bodies a schema-driven fuzzer does not generate: text that Python's ``json``
parses but that no JSON document can carry (``NaN``, ``Infinity``, numbers beyond a double,
lone UTF-16 surrogates such as ``"\\ud800"``), very deep nesting, and integral floats where
the schema says ``integer``.

API.md: a body that is not valid JSON is 400 (``INVALID_JSON``), never 500; JSON in and out.
So every answer here is a 4xx problem document, or a success whose body is strict JSON.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.testing import AppFactory, bearer, problem
from modules.auth.testing import admin_tokens, user_with_tokens

JSON = {"Content-Type": "application/json"}


def _reject(constant: str) -> Any:
    raise ValueError(f"not JSON: {constant}")


def strict_json(text: str) -> Any:
    """Parse as RFC 8259 JSON: no NaN/Infinity, no lone surrogates."""
    text.encode("utf-8")  # a lone surrogate cannot be encoded
    return json.loads(text, parse_constant=_reject)


def refused_or_strict(response: Any) -> None:
    """A 4xx problem document, or a 2xx whose body is strict JSON; never a 5xx."""
    body = response.get_data(as_text=True)
    assert response.status_code < 500, body
    if response.status_code >= 400:
        problem(response, response.status_code, response.get_json()["code"])
    elif body:
        strict_json(body)


@pytest.fixture
def app(make_app: AppFactory) -> Flask:
    return make_app({"MODULES_PACKAGES": "modules", "RATE_LIMIT_ENABLED": "false"})


@pytest.fixture
def user_auth(client: FlaskClient) -> dict[str, str]:
    _, tokens = user_with_tokens(client)
    return {**bearer(tokens["access_token"]), **JSON}


def answers(client: FlaskClient, cases: list[tuple[str, str, dict[str, str]]]) -> list[str]:
    """POST each case; the ones answered with a 5xx or with a body that is not strict JSON."""
    wrong = []
    for path, body, headers in cases:
        response = client.post(path, data=body.encode(), headers=headers)
        try:
            refused_or_strict(response)
        except (AssertionError, ValueError) as exc:
            wrong.append(f"{path} {body[:60]!r}: {response.status_code} ({exc!s:.120})")
    return wrong


def test_nan_and_infinity_are_invalid_json(client: FlaskClient, user_auth: dict[str, str]) -> None:
    cases = []
    for constant in ("NaN", "Infinity", "-Infinity"):
        for action in ("system.echo", "notes.create", "notes.list", "system.ping"):
            cases.append((f"/actions/{action}", f'{{"title": {constant}}}', user_auth))
        cases.append(("/public/login", f'{{"email": "a@b.co", "password": {constant}}}', JSON))
    codes = {}
    for path, body, headers in cases:
        response = client.post(path, data=body, headers=headers)
        codes[f"{path} {body}"] = (response.status_code, (response.get_json() or {}).get("code"))
    wrong = {case: got for case, got in codes.items() if got != (400, "INVALID_JSON")}
    assert not wrong, wrong


def test_numbers_beyond_a_double_never_come_back_as_invalid_json(
    client: FlaskClient, user_auth: dict[str, str]
) -> None:
    cases = [
        ("/actions/system.echo", f'{{"n": {number}}}', user_auth)
        for number in ("1e999", "-1e999", "1" + "0" * 400, "1e-999")
    ]
    assert not answers(client, cases)


SURROGATE = '"\\ud800x"'  # a lone high surrogate, as JSON escapes it


def test_lone_surrogates_are_refused_not_a_500(
    app: Flask, client: FlaskClient, user_auth: dict[str, str]
) -> None:
    admin = {**JSON, **bearer(admin_tokens(app, client)["access_token"])}
    password = '"\\udc00long-password"'
    cases = [
        ("/actions/notes.create", f'{{"title": {SURROGATE}}}', user_auth),
        ("/actions/notes.delete", f'{{"id": {SURROGATE}}}', user_auth),
        ("/actions/system.echo", f'{{"value": {SURROGATE}}}', user_auth),
        ("/actions/system.echo", f"{{{SURROGATE}: 1}}", user_auth),
        ("/actions/system.ping", f"{{{SURROGATE}: 1}}", JSON),
        (
            "/public/register",
            f'{{"email": "s@example.com", "username": "surrogate", "password": {password}}}',
            JSON,
        ),
        ("/public/login", f'{{"email": {SURROGATE}, "password": "long-password"}}', JSON),
        ("/public/login", f'{{"email": "s@example.com", "password": {password}}}', JSON),
        ("/public/refresh", f'{{"refresh_token": {SURROGATE}}}', JSON),
        ("/userauth/logout", f'{{"refresh_token": {SURROGATE}}}', user_auth),
        ("/userauth/api-keys", f'{{"name": {SURROGATE}, "scopes": ["a"]}}', admin),
        ("/userauth/admin/maintenance", f'{{"enabled": false, "message": {SURROGATE}}}', admin),
    ]
    wrong = answers(client, cases)
    assert not wrong, "\n".join(wrong)


def test_deeply_nested_bodies_are_refused_or_answered_never_a_500(
    client: FlaskClient, user_auth: dict[str, str]
) -> None:
    cases = []
    for depth in (600, 100_000):
        arrays = '{"a": ' + "[" * depth + "]" * depth + "}"
        objects = '{"a": ' + '{"a": ' * depth + "1" + "}" * depth + "}"
        cases += [
            ("/actions/system.echo", arrays, user_auth),
            ("/actions/notes.create", objects, user_auth),
            ("/public/login", objects, JSON),
        ]
    wrong = answers(client, cases)
    assert not wrong, "\n".join(wrong)


def test_an_integral_float_for_an_integer_param_is_that_integer(
    client: FlaskClient, user_auth: dict[str, str]
) -> None:
    """JSON Schema's ``integer`` accepts ``2.0`` (a number with a zero fractional part), so
    the action must treat it as 2, not hand a float to its store. Found by the fuzzer."""
    for title in ("one", "two", "three"):
        created = client.post("/actions/notes.create", json={"title": title}, headers=user_auth)
        assert created.status_code == 200

    for limit in ("2.0", "2e0", "0.02e2"):
        listed = client.post("/actions/notes.list", data=f'{{"limit": {limit}}}', headers=user_auth)
        assert listed.status_code == 200, (limit, listed.get_data(as_text=True))
        titles = [note["title"] for note in listed.get_json()["result"]["items"]]
        assert titles == ["three", "two"], limit


@pytest.mark.parametrize(
    "body",
    [
        b'{"title": "\xff\xfe"}',  # not UTF-8
        b'{"title": "x"',  # truncated
        b'{"title": "x"} trailing',
        b"",  # empty: {} (no fields), so a validation error for notes.create
        b"\x00",
        b'{"title": "x", "title": 5}',  # duplicate keys: the last one wins
        b'{"title": "' + b"x" * 201 + b'"}',
    ],
)
def test_malformed_bodies_are_client_errors(
    client: FlaskClient, user_auth: dict[str, str], body: bytes
) -> None:
    response = client.post("/actions/notes.create", data=body, headers=user_auth)
    assert 400 <= response.status_code < 500, response.get_data(as_text=True)
    problem(response, response.status_code, response.get_json()["code"])
