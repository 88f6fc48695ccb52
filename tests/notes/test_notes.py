"""The notes module: per-user notes through ``notes.create``, ``.list`` and ``.delete``."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.testing import bearer, manager_of, problem
from modules.auth.testing import user_with_tokens
from tests.support.packages import make_modules_package

NOTES = Path(__file__).resolve().parents[2] / "modules" / "notes"


def act(client: FlaskClient, token: str, name: str, body: dict[str, Any] | None = None) -> Any:
    return client.post(f"/actions/notes.{name}", json=body or {}, headers=bearer(token))


def create(client: FlaskClient, token: str, title: str, body: str = "") -> dict[str, Any]:
    response = act(client, token, "create", {"title": title, "body": body})
    assert response.status_code == 200, response.get_json()
    note: dict[str, Any] = response.get_json()["result"]
    return note


def titles(client: FlaskClient, token: str, **params: Any) -> list[str]:
    response = act(client, token, "list", params)
    assert response.status_code == 200, response.get_json()
    return [note["title"] for note in response.get_json()["result"]["items"]]


def test_a_user_creates_and_lists_notes_newest_first(client: FlaskClient) -> None:
    _, pair = user_with_tokens(client)
    token = pair["access_token"]
    note = create(client, token, "first", "some text")
    assert set(note) == {"id", "title", "body", "created_at"}
    assert (note["title"], note["body"]) == ("first", "some text")
    assert note["created_at"].endswith("Z")
    create(client, token, "second")
    create(client, token, "third")
    assert titles(client, token) == ["third", "second", "first"]
    assert titles(client, token, limit=2) == ["third", "second"]


def test_a_note_reads_back_exactly_as_it_was_created(client: FlaskClient) -> None:
    # created_at included: stamped in milliseconds, which is what MongoDB keeps.
    _, pair = user_with_tokens(client)
    note = create(client, pair["access_token"], "stamped")
    assert act(client, pair["access_token"], "list").get_json()["result"]["items"] == [note]


def test_the_body_defaults_to_empty(client: FlaskClient) -> None:
    _, pair = user_with_tokens(client)
    response = act(client, pair["access_token"], "create", {"title": "no body"})
    assert response.get_json()["result"]["body"] == ""


def test_a_user_never_sees_another_users_notes(client: FlaskClient) -> None:
    _, alice = user_with_tokens(client)
    _, bob = user_with_tokens(client)
    create(client, alice["access_token"], "alice's")
    create(client, bob["access_token"], "bob's")
    assert titles(client, alice["access_token"]) == ["alice's"]
    assert titles(client, bob["access_token"]) == ["bob's"]


def test_deleting_someone_elses_note_is_404_like_a_missing_one(client: FlaskClient) -> None:
    _, alice = user_with_tokens(client)
    _, bob = user_with_tokens(client)
    note = create(client, alice["access_token"], "keep me")
    problem(act(client, bob["access_token"], "delete", {"id": note["id"]}), 404, "NOT_FOUND")
    missing = "0" * 24
    problem(act(client, bob["access_token"], "delete", {"id": missing}), 404, "NOT_FOUND")
    assert titles(client, alice["access_token"]) == ["keep me"]


def test_the_owner_deletes_a_note_once(client: FlaskClient) -> None:
    _, pair = user_with_tokens(client)
    token = pair["access_token"]
    note = create(client, token, "temporary")
    assert act(client, token, "delete", {"id": note["id"]}).get_json() == {
        "result": {"deleted": True}
    }
    assert titles(client, token) == []
    problem(act(client, token, "delete", {"id": note["id"]}), 404, "NOT_FOUND")


def test_params_are_validated(client: FlaskClient) -> None:
    _, pair = user_with_tokens(client)
    token = pair["access_token"]
    errors = problem(act(client, token, "create", {"body": 5}), 400, "VALIDATION_ERROR")["errors"]
    assert [e["field"] for e in errors] == ["/body", "/title"]
    errors = problem(act(client, token, "delete", {"id": "nope"}), 400, "VALIDATION_ERROR")[
        "errors"
    ]
    assert [e["field"] for e in errors] == ["/id"]
    problem(act(client, token, "list", {"limit": 0}), 400, "VALIDATION_ERROR")


def test_notes_need_a_user_token(client: FlaskClient) -> None:
    problem(client.post("/actions/notes.list", json={}), 401, "AUTH_REQUIRED")


def test_the_list_query_is_indexed(app: Flask) -> None:
    notes = manager_of(app).database.mongo.collection("notes")
    indexes = {index["name"]: index["key"] for index in notes.list_indexes()}
    assert list(indexes["owner_newest"]) == ["owner", "created_at", "_id"]
    plan = notes.find({"owner": "someone"}).sort([("created_at", -1), ("_id", -1)]).explain()
    assert "owner_newest" in str(plan)


def test_a_copy_under_another_name_owns_its_actions_collection_and_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_app: Callable[..., Flask]
) -> None:
    package = make_modules_package(tmp_path, monkeypatch, {})
    shutil.copytree(NOTES, tmp_path / package / "memos", ignore=shutil.ignore_patterns("__py*"))
    app = make_app({"MODULES_PACKAGES": f"modules,{package}"})
    client = app.test_client()
    _, pair = user_with_tokens(client)
    headers = bearer(pair["access_token"])
    memo = client.post("/actions/memos.create", json={"title": "copied"}, headers=headers)
    assert memo.status_code == 200, memo.get_json()
    assert titles(client, pair["access_token"]) == []  # notes.list does not see it
    listed = client.post("/actions/memos.list", json={}, headers=headers).get_json()
    assert [item["title"] for item in listed["result"]["items"]] == ["copied"]
    manager = manager_of(app)
    assert manager.database.mongo.collection("memos").count_documents({}) == 1
    assert manager.database.mongo.collection("notes").count_documents({}) == 0
    assert {"notes", "memos"} <= set(manager.services.names())
