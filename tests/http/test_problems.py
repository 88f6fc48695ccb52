"""Every error is an RFC 9457 problem with a stable code and the request id."""

from __future__ import annotations

import multiprocessing
import re
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from app import create_app
from core.testing import problem


@pytest.fixture
def offline_client(tmp_path: Path) -> FlaskClient:
    """An app whose tested paths touch no store, so it is built without start-up work."""
    app = create_app(
        {
            "APP_ENV": "test",
            "SECRETS_DIR": str(tmp_path),
            "MODULES_PACKAGES": "tests.support.modules",
            "MAX_CONTENT_LENGTH": "2048",
            "TRUSTED_PROXIES": "1",
        },
        start=False,
    )
    return app.test_client()


def test_malformed_json_is_400_invalid_json(offline_client: FlaskClient) -> None:
    response = offline_client.post(
        "/public/probe/echo", data=b'{"a": ', content_type="application/json"
    )
    problem(response, 400, "INVALID_JSON")


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"42", b"null"])
def test_a_body_that_is_not_an_object_is_400_validation_error(
    offline_client: FlaskClient, body: bytes
) -> None:
    response = offline_client.post("/public/probe/echo", data=body, content_type="application/json")
    body_json = problem(response, 400, "VALIDATION_ERROR")
    assert body_json["errors"] == [{"field": "", "message": "must be a JSON object"}]


def test_a_body_over_max_content_length_is_413(offline_client: FlaskClient) -> None:
    response = offline_client.post("/public/probe/echo", json={"blob": "x" * 4096})
    problem(response, 413, "PAYLOAD_TOO_LARGE")


def test_a_body_that_is_not_json_is_415(offline_client: FlaskClient) -> None:
    response = offline_client.post(
        "/public/probe/echo", data="a=1", content_type="application/x-www-form-urlencoded"
    )
    problem(response, 415, "UNSUPPORTED_MEDIA_TYPE")


def test_a_valid_object_reaches_the_view(offline_client: FlaskClient) -> None:
    response = offline_client.post("/public/probe/echo", json={"a": [1, {"b": None}]})
    assert response.status_code == 200
    assert response.get_json() == {"received": {"a": [1, {"b": None}]}}


def test_unknown_path_is_404_not_found(offline_client: FlaskClient) -> None:
    problem(offline_client.get("/no/such/path"), 404, "NOT_FOUND")


def test_wrong_method_is_405_with_allow(offline_client: FlaskClient) -> None:
    response = offline_client.delete("/public/probe/echo")
    problem(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers["Allow"] == "OPTIONS, POST"


def test_an_unhandled_exception_is_500_without_internals(offline_client: FlaskClient) -> None:
    response = offline_client.get("/public/probe/boom?secret=xyz")
    body = problem(response, 500, "INTERNAL_ERROR")
    assert body["detail"] == "An unexpected error occurred."
    assert b"xyz" not in response.data
    assert b"RuntimeError" not in response.data


@pytest.mark.parametrize(
    ("path", "code"),
    [("/userauth/probe/private", "AUTH_REQUIRED"), ("/keyauth/probe/private", "API_KEY_REQUIRED")],
)
def test_authenticated_prefixes_refuse_callers_without_credentials(
    offline_client: FlaskClient, path: str, code: str
) -> None:
    response = offline_client.get(path)
    problem(response, 401, code)
    assert b"only for authenticated" not in response.data


def test_a_valid_request_id_is_echoed_and_an_invalid_one_replaced(
    offline_client: FlaskClient,
) -> None:
    echoed = offline_client.get("/health/live", headers={"X-Request-ID": "abc-123_.X"})
    assert echoed.headers["X-Request-ID"] == "abc-123_.X"
    for bad in ("has space", "x" * 129, "semi;colon"):
        replaced = offline_client.get("/health/live", headers={"X-Request-ID": bad})
        assert replaced.headers["X-Request-ID"] != bad
        assert len(replaced.headers["X-Request-ID"]) == 32


def test_generated_request_ids_are_distinct_hex_across_batches_and_forks(
    offline_client: FlaskClient,
) -> None:
    """Generated ids are read from the OS's random source 256 at a time (docs/decisions.md):
    every one is 32 hex digits and none repeats, across batches and in a forked process."""
    generated = [offline_client.get("/health/live").headers["X-Request-ID"] for _ in range(600)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", request_id) for request_id in generated)
    assert len(set(generated)) == len(generated)

    fork = multiprocessing.get_context("fork")
    receiving, sending = fork.Pipe(duplex=False)

    def in_a_child() -> None:  # the ids left in the parent's batch must not be handed out again
        sending.send([offline_client.get("/health/live").headers["X-Request-ID"] for _ in "12345"])

    child = fork.Process(target=in_a_child)
    child.start()
    in_child = receiving.recv() if receiving.poll(60) else []
    child.join(60)
    assert child.exitcode == 0
    in_parent = [offline_client.get("/health/live").headers["X-Request-ID"] for _ in range(5)]
    assert len(in_child) == 5
    assert not set(in_child) & set(in_parent)


def test_security_headers_are_on_every_response_and_hsts_only_over_https(
    offline_client: FlaskClient,
) -> None:
    for response in (offline_client.get("/health/live"), offline_client.get("/missing")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert "Strict-Transport-Security" not in response.headers
    https = offline_client.get("/health/live", headers={"X-Forwarded-Proto": "https"})
    assert https.headers["Strict-Transport-Security"].startswith("max-age=")


def test_a_views_own_headers_win_over_the_pipelines_whatever_their_case(
    client: FlaskClient,
) -> None:
    response = client.get("/public/probe/own-headers")
    assert response.status_code == 200
    headers = response.headers
    assert headers.getlist("Cache-Control") == ["max-age=60"]
    assert headers.getlist("X-Frame-Options") == ["SAMEORIGIN"]
    assert headers.getlist("X-RateLimit-Limit") == ["7"]
    # What the view did not set is still added, once each.
    for name in ("X-Content-Type-Options", "Referrer-Policy", "X-RateLimit-Remaining"):
        assert len(headers.getlist(name)) == 1, name
    assert len(headers.getlist("X-Request-ID")) == 1
