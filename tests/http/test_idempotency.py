"""Idempotency-Key on real servers: a retried write runs once and gets the first answer (same
status and body, Idempotent-Replayed: true); another request with the key is 422, a retry
while the first runs 409; keys are the caller's own; what a failed first attempt leaves."""

from __future__ import annotations

import importlib
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from core.testing import AppFactory, bearer, problem
from modules.auth.testing import admin_tokens, user_with_tokens
from tests.actions.conftest import write_modules

SOURCE = textwrap.dedent(
    """
    import threading

    from core.errors import Conflict
    from core.module import BaseModule

    GATE = threading.Event()
    CALLS = {"slow": 0, "flaky": 0, "refuse": 0}


    def slow(params, context):
        CALLS["slow"] += 1
        GATE.wait(20)
        return {"calls": CALLS["slow"]}


    def flaky(params, context):
        CALLS["flaky"] += 1
        if CALLS["flaky"] == 1:
            raise RuntimeError("the first attempt fails")
        return {"calls": CALLS["flaky"]}


    def refuse(params, context):
        CALLS["refuse"] += 1
        raise Conflict("Not now.", code="NOT_NOW")


    class Module(BaseModule):
        pass
    """
)
YAML = textwrap.dedent(
    """
    actions:
      - {name: redo.slow, description: Waits for the gate., handler: ".:slow", auth: jwt,
         idempotent: true}
      - {name: redo.flaky, description: Fails once., handler: ".:flaky", auth: jwt,
         idempotent: true}
      - {name: redo.refuse, description: Always 409., handler: ".:refuse", auth: jwt,
         idempotent: true, errors: {NOT_NOW: 409}}
    """
)


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    return write_modules(tmp_path, monkeypatch, {"redo": (SOURCE, YAML)})


@pytest.fixture
def app(make_app: AppFactory, package: str) -> Flask:
    return make_app({"MODULES_PACKAGES": f"modules,{package}"})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def post(
    client: FlaskClient, path: str, token: str, body: dict[str, Any], key: str | None
) -> TestResponse:
    headers = {**bearer(token), **({"Idempotency-Key": key} if key is not None else {})}
    return client.post(path, json=body, headers=headers)


def notes(client: FlaskClient, token: str) -> list[str]:
    listed = client.post("/actions/notes.list", json={}, headers=bearer(token))
    return [note["title"] for note in listed.get_json()["result"]["items"]]


def test_a_retried_create_gets_the_first_answer_and_creates_once(client: FlaskClient) -> None:
    _, tokens = user_with_tokens(client)
    token, key = tokens["access_token"], str(uuid.uuid4())
    first = post(client, "/actions/notes.create", token, {"title": "once"}, key)
    again = post(client, "/actions/notes.create", token, {"title": "once"}, key)
    assert first.status_code == again.status_code == 200
    assert again.get_data() == first.get_data()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["X-Request-ID"] != first.headers["X-Request-ID"]  # a new request
    assert notes(client, token) == ["once"]
    # Without the header a write is a write.
    post(client, "/actions/notes.create", token, {"title": "twice"}, None)
    post(client, "/actions/notes.create", token, {"title": "twice"}, None)
    assert notes(client, token) == ["twice", "twice", "once"]


def test_the_key_with_another_request_is_422(client: FlaskClient) -> None:
    _, tokens = user_with_tokens(client)
    token, key = tokens["access_token"], str(uuid.uuid4())
    post(client, "/actions/notes.create", token, {"title": "first"}, key)
    other = post(client, "/actions/notes.create", token, {"title": "second"}, key)
    problem(other, 422, "IDEMPOTENCY_KEY_MISMATCH")
    elsewhere = post(client, "/actions/notes.list", token, {}, key)  # not opted in: runs
    assert elsewhere.status_code == 200
    assert notes(client, token) == ["first"]


def test_keys_are_the_callers_own(client: FlaskClient) -> None:
    _, ada = user_with_tokens(client)
    _, bob = user_with_tokens(client)
    key = str(uuid.uuid4())
    for tokens in (ada, bob):
        made = post(client, "/actions/notes.create", tokens["access_token"], {"title": "t"}, key)
        assert "Idempotent-Replayed" not in made.headers
    assert notes(client, ada["access_token"]) == notes(client, bob["access_token"]) == ["t"]


def test_a_retry_while_the_first_runs_is_409_then_gets_its_answer(
    app: Flask, client: FlaskClient, package: str
) -> None:
    module = importlib.import_module(f"{package}.redo")
    _, tokens = user_with_tokens(client)
    token, key = tokens["access_token"], str(uuid.uuid4())
    answers: list[TestResponse] = []
    first = threading.Thread(
        target=lambda: answers.append(post(app.test_client(), "/actions/redo.slow", token, {}, key))
    )
    first.start()
    try:
        deadline = time.monotonic() + 10
        while module.CALLS["slow"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        racing = [post(client, "/actions/redo.slow", token, {}, key) for _ in range(3)]
        for answer in racing:
            assert problem(answer, 409, "IDEMPOTENCY_KEY_IN_USE")
            assert answer.headers["Retry-After"] == "1"
    finally:
        module.GATE.set()
        first.join(20)
    assert answers[0].get_json() == {"result": {"calls": 1}}
    replay = post(client, "/actions/redo.slow", token, {}, key)
    assert replay.get_json() == {"result": {"calls": 1}}
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert module.CALLS["slow"] == 1


def test_concurrent_duplicates_create_one_note(app: Flask) -> None:
    _, tokens = user_with_tokens(app.test_client())
    token, key, racers = tokens["access_token"], str(uuid.uuid4()), 8
    barrier = threading.Barrier(racers)
    answers: list[TestResponse] = []

    def race() -> None:
        own = app.test_client()
        barrier.wait(10)
        answers.append(post(own, "/actions/notes.create", token, {"title": "raced"}, key))

    threads = [threading.Thread(target=race) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    created = [a.get_json()["result"]["id"] for a in answers if a.status_code == 200]
    refused = [a.get_json()["code"] for a in answers if a.status_code != 200]
    assert len(created) + len(refused) == racers
    assert len(set(created)) == 1  # the one note, first made then replayed
    assert set(refused) <= {"IDEMPOTENCY_KEY_IN_USE"}
    assert notes(app.test_client(), token) == ["raced"]


def test_a_failed_first_attempt_runs_again_a_refusal_is_replayed(
    client: FlaskClient, package: str
) -> None:
    module = importlib.import_module(f"{package}.redo")
    _, tokens = user_with_tokens(client)
    token = tokens["access_token"]
    flaky = str(uuid.uuid4())
    problem(post(client, "/actions/redo.flaky", token, {}, flaky), 500, "INTERNAL_ERROR")
    retried = post(client, "/actions/redo.flaky", token, {}, flaky)  # a 5xx is not kept
    assert retried.get_json() == {"result": {"calls": 2}}
    assert "Idempotent-Replayed" not in retried.headers
    refused = str(uuid.uuid4())
    first = post(client, "/actions/redo.refuse", token, {}, refused)
    problem(first, 409, "NOT_NOW")
    again = post(client, "/actions/redo.refuse", token, {}, refused)  # the endpoint's answer
    assert (again.status_code, again.get_data()) == (409, first.get_data())
    assert again.headers["Idempotent-Replayed"] == "true"
    assert module.CALLS["refuse"] == 1
    # A refusal that means nothing ran (an invalid body) is not kept: the corrected call,
    # same key, runs.
    bad = str(uuid.uuid4())
    problem(post(client, "/actions/notes.create", token, {}, bad), 400, "VALIDATION_ERROR")
    fixed = post(client, "/actions/notes.create", token, {"title": "fixed"}, bad)
    assert fixed.status_code == 200
    assert notes(client, token) == ["fixed"]


def test_an_api_key_is_created_once(app: Flask, client: FlaskClient) -> None:
    admin = admin_tokens(app, client)["access_token"]
    key = str(uuid.uuid4())
    body = {"name": "ci", "scopes": []}
    first = post(client, "/userauth/api-keys", admin, body, key)
    again = post(client, "/userauth/api-keys", admin, body, key)
    assert first.status_code == again.status_code == 201
    assert again.get_json()["key"] == first.get_json()["key"]
    listed = client.get("/userauth/api-keys", headers=bearer(admin)).get_json()["items"]
    assert [item["name"] for item in listed] == ["ci"]


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "caf\u00e9"])
def test_a_malformed_key_is_400(client: FlaskClient, key: str) -> None:
    _, tokens = user_with_tokens(client)
    headers = {**bearer(tokens["access_token"]), "Idempotency-Key": key}
    answer = client.post("/actions/notes.create", json={"title": "t"}, headers=headers)
    problem(answer, 400, "IDEMPOTENCY_KEY_INVALID")


def test_after_the_ttl_the_key_runs_again(make_app: AppFactory) -> None:
    client = make_app({"IDEMPOTENCY_TTL": "0.5"}).test_client()
    _, tokens = user_with_tokens(client)
    token, key = tokens["access_token"], str(uuid.uuid4())
    post(client, "/actions/notes.create", token, {"title": "t"}, key)
    time.sleep(0.8)
    again = post(client, "/actions/notes.create", token, {"title": "t"}, key)
    assert "Idempotent-Replayed" not in again.headers
    assert notes(client, token) == ["t", "t"]


@pytest.mark.parametrize(
    ("path", "method"), [("/actions/notes.create", "post"), ("/userauth/api-keys", "post")]
)
def test_the_document_shows_the_header_and_its_problems(
    client: FlaskClient, path: str, method: str
) -> None:
    operation = client.get("/openapi.json").get_json()["paths"][path][method]
    [header] = [p for p in operation["parameters"] if p["in"] == "header"]
    assert (header["name"], header["required"]) == ("Idempotency-Key", False)
    responses = operation["responses"]
    assert "IDEMPOTENCY_KEY_IN_USE" in responses["409"]["description"]
    assert "IDEMPOTENCY_KEY_MISMATCH" in responses["422"]["description"]
    assert "IDEMPOTENCY_KEY_INVALID" in responses["400"]["description"]
