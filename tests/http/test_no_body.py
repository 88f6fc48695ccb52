"""A typed write route that declares no body takes none (core.http.typed.NoBody): no body or
``{}`` is accepted, any field refused, and /openapi.json shows no request body."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from core.testing import AppFactory, problem
from tests.support.packages import make_modules_package

SOURCE = textwrap.dedent(
    '''
    from core.http.routes import Routes
    from core.module import BaseModule

    bp = Routes("bodiless", __name__)


    @bp.post("/public/bodiless/ring")
    def ring() -> None:
        """Ring the bell: nothing to send."""


    class Module(BaseModule):
        blueprint = bp
    '''
)
RING = "/public/bodiless/ring"


@pytest.fixture
def client(make_app: AppFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FlaskClient:
    package = make_modules_package(tmp_path, monkeypatch, {"bodiless": SOURCE})
    return make_app({"MODULES_PACKAGES": f"modules,{package}"}).test_client()


@pytest.mark.parametrize("send", [{}, {"json": {}}])
def test_no_body_or_an_empty_object_is_taken(client: FlaskClient, send: dict[str, Any]) -> None:
    assert client.post(RING, **send).status_code == 204


def test_any_field_is_refused(client: FlaskClient) -> None:
    refused = problem(client.post(RING, json={"loud": True, "twice": 2}), 400, "VALIDATION_ERROR")
    assert refused["errors"] == [
        {"field": "/loud", "message": "is not allowed"},
        {"field": "/twice", "message": "is not allowed"},
    ]


def test_the_document_shows_no_request_body(client: FlaskClient) -> None:
    operation = client.get("/openapi.json").get_json()["paths"][RING]["post"]
    assert "requestBody" not in operation
    assert "204" in operation["responses"]
