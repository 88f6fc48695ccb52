"""Cursor pagination (``core.managers.database.pages.paginate``), walked end to end through
its two users: the ``notes.list`` action and ``GET /userauth/api-keys``."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from core.testing import bearer, problem
from modules.api_keys.testing import create_api_key
from modules.auth.testing import user_with_tokens


@pytest.fixture
def token(admin: dict[str, Any]) -> str:
    """An admin's access token: admins list API keys, and write notes like anyone."""
    access: str = admin["access_token"]
    return access


#: One page: (items, next_cursor).
Fetch = Callable[[dict[str, Any]], tuple[list[dict[str, Any]], str | None]]


def notes_of(client: FlaskClient, token: str) -> Fetch:
    def fetch(params: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
        response = client.post("/actions/notes.list", json=params, headers=bearer(token))
        assert response.status_code == 200, response.get_data(as_text=True)
        result = response.get_json()["result"]
        return result["items"], result["next_cursor"]

    return fetch


def keys_of(client: FlaskClient, token: str) -> Fetch:
    def fetch(params: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
        response = client.get("/userauth/api-keys", query_string=params, headers=bearer(token))
        assert response.status_code == 200, response.get_data(as_text=True)
        page = response.get_json()
        return page["items"], page["next_cursor"]

    return fetch


def walk(fetch: Fetch, limit: int) -> list[list[str]]:
    """Every page's ids, following ``next_cursor`` until it is null."""
    pages: list[list[str]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        items, cursor = fetch(params)
        pages.append([item["id"] for item in items])
        assert len(pages) < 50, "the walk does not end"
        if cursor is None:
            return pages


def new_note(client: FlaskClient, token: str, title: str) -> str:
    response = client.post("/actions/notes.create", json={"title": title}, headers=bearer(token))
    assert response.status_code == 200, response.get_data(as_text=True)
    note_id: str = response.get_json()["result"]["id"]
    return note_id


def writer(client: FlaskClient, notes: int) -> tuple[str, list[str]]:
    """A new user's access token and the ids of the ``notes`` they wrote, oldest first."""
    _, pair = user_with_tokens(client)
    token: str = pair["access_token"]
    return token, [new_note(client, token, f"note {i}") for i in range(notes)]


def test_notes_are_walked_page_by_page_newest_first_without_repeats_or_gaps(
    client: FlaskClient,
) -> None:
    token, created = writer(client, 7)
    writer(client, 1)  # someone else's note

    pages = walk(notes_of(client, token), limit=3)

    assert [len(page) for page in pages] == [3, 3, 1]
    assert [note for page in pages for note in page] == created[::-1]


def test_a_full_last_page_ends_the_walk_with_a_null_cursor(client: FlaskClient) -> None:
    token, _ = writer(client, 4)

    pages = walk(notes_of(client, token), limit=2)

    assert [len(page) for page in pages] == [2, 2]


def test_notes_written_during_a_walk_do_not_shift_the_pages_still_to_come(
    client: FlaskClient,
) -> None:
    token, created = writer(client, 5)
    fetch = notes_of(client, token)

    first, cursor = fetch({"limit": 2})
    new_note(client, token, "newer than the walk")  # sorts before the cursor: not seen
    rest, cursor = fetch({"limit": 10, "cursor": cursor})

    assert cursor is None
    assert [n["id"] for n in first + rest] == created[::-1]


def test_api_keys_are_walked_oldest_first(client: FlaskClient, token: str) -> None:
    created = [create_api_key(client, token, [])["id"] for _ in range(5)]
    revoked = create_api_key(client, token, [])["id"]
    assert client.delete(f"/userauth/api-keys/{revoked}", headers=bearer(token)).status_code == 204

    pages = walk(keys_of(client, token), limit=2)

    assert [len(page) for page in pages] == [2, 2, 1]
    assert [key for page in pages for key in page] == created
    assert keys_of(client, token)({})[1] is None  # the default limit (20) holds them all


def _forged(payload: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


_OID = {"$oid": "0" * 24}
_NOTES = ["notes", "created_at:-1", "_id:-1"]
_KEYS = ["api_keys", "created_at:1", "_id:1"]
BAD_CURSORS = [
    "not-a-cursor",
    "%%%",
    "x" * 600,
    # The right list, but an operator where a value belongs: refused, never run.
    _forged({"k": _NOTES, "v": [{"$gt": ""}, _OID]}),
    _forged({"k": _KEYS, "v": [{"$gt": ""}, _OID]}),
    _forged({"k": _NOTES, "v": [{"$date": "2024-01-01T00:00:00Z"}, "not an id"]}),
    _forged({"k": _KEYS, "v": [1]}),
    _forged({"k": ["users", "created_at:1", "_id:1"], "v": [1, _OID]}),
    _forged([1, 2]),  # type: ignore[arg-type]
]


@pytest.mark.parametrize("cursor", BAD_CURSORS)
def test_a_bad_cursor_is_a_400_problem_naming_the_cursor(
    client: FlaskClient, token: str, cursor: str
) -> None:
    for response in (
        client.get("/userauth/api-keys", query_string={"cursor": cursor}, headers=bearer(token)),
        client.post("/actions/notes.list", json={"cursor": cursor}, headers=bearer(token)),
    ):
        body = problem(response, 400, "VALIDATION_ERROR")
        assert [error["field"] for error in body["errors"]] == ["/cursor"]


def test_a_cursor_of_one_list_is_refused_by_the_other(client: FlaskClient, token: str) -> None:
    for _ in range(2):
        create_api_key(client, token, [])
        new_note(client, token, "n")
    _, key_cursor = keys_of(client, token)({"limit": 1})
    _, note_cursor = notes_of(client, token)({"limit": 1})
    assert key_cursor
    assert note_cursor

    wrong = client.post("/actions/notes.list", json={"cursor": key_cursor}, headers=bearer(token))
    problem(wrong, 400, "VALIDATION_ERROR")
    wrong = client.get(
        "/userauth/api-keys", query_string={"cursor": note_cursor}, headers=bearer(token)
    )
    problem(wrong, 400, "VALIDATION_ERROR")


@pytest.mark.parametrize("limit", [0, 101, "x"])
def test_limit_is_bounded(client: FlaskClient, token: str, limit: Any) -> None:
    response = client.get(
        "/userauth/api-keys", query_string={"limit": limit}, headers=bearer(token)
    )
    assert problem(response, 400, "VALIDATION_ERROR")["errors"][0]["field"] == "/limit"
    response = client.post("/actions/notes.list", json={"limit": limit}, headers=bearer(token))
    assert problem(response, 400, "VALIDATION_ERROR")["errors"][0]["field"] == "/limit"
