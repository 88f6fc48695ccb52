"""A typed route that hands its body on declares ``body=JsonObject``
(core.http.typed.JsonObject): the view gets the object the pipeline parsed, neither rebuilt
nor validated again (``POST /actions/<name>`` validates its params once, in the executor)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from core.testing import AppFactory, problem
from tests.support.packages import make_modules_package

SOURCE = textwrap.dedent(
    '''
    from typing import Any

    from pydantic import BaseModel

    from core.http.pipeline import json_body
    from core.http.routes import Routes
    from core.http.typed import JsonObject
    from core.module import BaseModule

    bp = Routes("relay", __name__)


    class Relayed(BaseModel):
        fields: list[str]
        as_parsed: bool


    @bp.post("/public/relay/on", body=JsonObject, response=Relayed)
    def relay(body: dict[str, Any]) -> Relayed:
        """Hand the body on."""
        return Relayed(fields=sorted(body), as_parsed=body is json_body())


    class Module(BaseModule):
        blueprint = bp
    '''
)
RELAY = "/public/relay/on"


@pytest.fixture
def client(make_app: AppFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FlaskClient:
    package = make_modules_package(tmp_path, monkeypatch, {"relay": SOURCE})
    return make_app({"MODULES_PACKAGES": f"modules,{package}"}).test_client()


def test_the_view_gets_the_parsed_object_itself(client: FlaskClient) -> None:
    answer = client.post(RELAY, json={"b": [1], "a": {"any": "thing"}})
    assert answer.get_json() == {"fields": ["a", "b"], "as_parsed": True}
    assert client.post(RELAY).get_json()["fields"] == []  # no body: {}


def test_anything_but_an_object_is_still_refused_by_the_pipeline(client: FlaskClient) -> None:
    problem(client.post(RELAY, json=[1, 2]), 400, "VALIDATION_ERROR")


def test_the_document_shows_an_object_body(client: FlaskClient) -> None:
    document = client.get("/openapi.json").get_json()
    body = document["paths"][RELAY]["post"]["requestBody"]["content"]["application/json"]
    schema = document["components"]["schemas"][body["schema"]["$ref"].rpartition("/")[2]]
    assert (schema["type"], schema["additionalProperties"]) == ("object", True)
