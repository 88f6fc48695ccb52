"""Validation errors are capped (issue "Security III", item 2): a body of ~79,000 unknown fields
answers at most 20 errors, small and fast, through each door (a typed route, an action, a
socket event), because the one validation path stops scanning at the cap.

The cost is the server's own CPU time for the request, read on the thread that handled it
(``time.thread_time``), the best of three after a first one (which also pays for memory the
process had not touched yet), so a loaded machine cannot make the test fail or pass by itself:
it fails when the work grows with the number of fields (before the cap: 528 ms and 4.0 MB).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask, request_finished, request_started

from core.app_manager import get_app_manager
from core.edge.validation import MAX_ERRORS
from core.testing import AppFactory, Client, bearer, problem, serving
from modules.auth.testing import user_with_tokens

FIELDS = 79_000
#: What one answer may cost at most, in bytes and in server CPU seconds.
ANSWER_MAX = 64 * 1024
SERVER_SECONDS_MAX = 0.050


def _flood() -> dict[str, int]:
    """~838 KiB of JSON: 79,000 unknown fields of 6 characters."""
    return {f"{n:06x}": 0 for n in range(FIELDS)}


@pytest.fixture(scope="module")
def flood() -> bytes:
    body = json.dumps(_flood(), separators=(",", ":")).encode()
    assert 800 * 1024 < len(body) < 1024 * 1024
    return body


@contextmanager
def server_seconds(app: Flask) -> Iterator[list[float]]:
    """The CPU time of each request ``app`` handles, measured on the thread handling it."""
    spent: list[float] = []
    started: list[float] = []

    def on_started(sender: Flask, **_: Any) -> None:
        started.append(time.thread_time())

    def on_finished(sender: Flask, **_: Any) -> None:
        spent.append(time.thread_time() - started.pop())

    request_started.connect(on_started, app)
    request_finished.connect(on_finished, app)
    try:
        yield spent
    finally:
        request_started.disconnect(on_started, app)
        request_finished.disconnect(on_finished, app)


TRIES = 4


def _check(errors: list[dict[str, str]], size: int, seconds: list[float]) -> None:
    assert len(errors) == MAX_ERRORS
    assert all(error["message"] == "is not allowed" for error in errors[:-2]), errors
    assert size < ANSWER_MAX, size
    best = min(seconds[1:])
    assert best < SERVER_SECONDS_MAX, f"{best * 1000:.1f} ms of server CPU ({seconds})"


def test_a_route_body_of_79000_unknown_fields_answers_20_errors(app: Flask, flood: bytes) -> None:
    client = app.test_client()
    with server_seconds(app) as spent:
        for _ in range(TRIES):
            response = client.post(
                "/public/typed/widgets", data=flood, content_type="application/json"
            )
    body = problem(response, 400, "VALIDATION_ERROR")
    _check(body["errors"], len(response.get_data()), spent)


def test_an_action_body_of_79000_unknown_fields_answers_20_errors(app: Flask, flood: bytes) -> None:
    client = app.test_client()
    _, tokens = user_with_tokens(client)
    with server_seconds(app) as spent:
        for _ in range(TRIES):
            response = client.post(
                "/actions/notes.create",
                data=flood,
                content_type="application/json",
                headers=bearer(tokens["access_token"]),
            )
    body = problem(response, 400, "VALIDATION_ERROR")
    _check(body["errors"], len(response.get_data()), spent)


def test_a_socket_event_of_79000_unknown_fields_answers_20_errors(
    make_app: AppFactory, flood: bytes
) -> None:
    app = make_app({"SOCKETIO_MAX_BUFFER": str(2 * 1024 * 1024)})
    _, tokens = user_with_tokens(app.test_client())
    spent: list[float] = []
    with app.app_context():
        # Each event runs on a thread of its own: its CPU time so far is the event's.
        get_app_manager().hooks.register(
            "socket.event", lambda **_: spent.append(time.thread_time())
        )
    client = Client()
    try:
        with serving(app) as url:
            client.connect(url, tokens["access_token"])
            payload = {"name": "flooded", **_flood()}
            for _ in range(TRIES):
                ack = client.call("create_room", payload)
    finally:
        client.close()
    assert ack["ok"] is False
    assert ack["error"]["code"] == "VALIDATION_ERROR", str(ack)[:300]
    _check(ack["error"]["errors"], len(json.dumps(ack)), spent)
