"""A chunked body (no Content-Length) over MAX_CONTENT_LENGTH is 413 PAYLOAD_TOO_LARGE, on the
threaded server and on gunicorn: it used to be cut at the maximum and answered 400
INVALID_JSON (issue 22)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from core.testing import AppFactory, serving
from tests.production.helpers import Gunicorn

LIMIT = 4096


def login_body(size: int) -> bytes:
    """A valid JSON login body of exactly ``size`` bytes (padded with spaces)."""
    body = json.dumps({"email": "nobody@example.com", "password": "wrong-password"}).encode()
    return body + b" " * (size - len(body))


def post_chunked(url: str, body: bytes) -> tuple[int, dict[str, Any]]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request(
            "POST",
            "/public/login",
            body=(body[i : i + 1000] for i in range(0, len(body), 1000)),
            headers={"Content-Type": "application/json"},
            encode_chunked=True,
        )
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        connection.close()


@pytest.fixture(params=["threaded", "gunicorn"])
def url(
    request: pytest.FixtureRequest, make_app: AppFactory, app_env: dict[str, str], tmp_path: Path
) -> Iterator[str]:
    settings = {"MAX_CONTENT_LENGTH": str(LIMIT)}
    if request.param == "threaded":
        with serving(make_app(settings)) as served:
            yield served
        return
    server = Gunicorn({**app_env, **settings}, tmp_path / "gunicorn.log", ())
    try:
        server.wait_ready()
        yield server.url
    finally:
        server.stop()


def test_a_chunked_body_over_the_maximum_is_413(url: str) -> None:
    status, problem = post_chunked(url, login_body(LIMIT + 1))
    assert (status, problem["code"]) == (413, "PAYLOAD_TOO_LARGE")
    status, problem = post_chunked(url, login_body(20 * LIMIT))
    assert (status, problem["code"]) == (413, "PAYLOAD_TOO_LARGE")
    # Exactly the maximum is read whole and judged on its content.
    status, problem = post_chunked(url, login_body(LIMIT))
    assert (status, problem["code"]) == (401, "INVALID_CREDENTIALS")
