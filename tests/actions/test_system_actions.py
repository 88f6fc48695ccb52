"""The framework's own actions: ``system.ping`` (public) and ``system.echo`` (jwt)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask.testing import FlaskClient

from core.testing import bearer, problem


def test_ping_answers_anyone_with_pong_and_the_utc_time(client: FlaskClient) -> None:
    response = client.post("/actions/system.ping")
    assert response.status_code == 200
    result = response.get_json()["result"]
    assert result["pong"] is True
    assert result["time"].endswith("Z")
    sent = datetime.fromisoformat(result["time"].replace("Z", "+00:00"))
    assert abs(datetime.now(UTC) - sent) < timedelta(seconds=5)


def test_echo_returns_any_object_to_a_user(client: FlaskClient, user: dict[str, Any]) -> None:
    body = {"text": "hi", "nested": {"list": [1, None, True]}, "n": 1.5}
    response = client.post("/actions/system.echo", json=body, headers=bearer(user["access_token"]))
    assert response.get_json() == {"result": body}


def test_echo_needs_a_user_token(client: FlaskClient) -> None:
    problem(client.post("/actions/system.echo", json={"a": 1}), 401, "AUTH_REQUIRED")
