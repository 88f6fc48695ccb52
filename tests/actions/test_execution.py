"""Running handlers: error mapping, result checks, the before_execute hook and timeouts."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.errors import TooManyRequests
from core.managers.actions import Action, ActionContext, Execution
from core.managers.actions import executor as executor_module
from core.testing import bearer, manager_of, problem


def logged(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]


def test_a_handler_api_error_becomes_its_problem(client: FlaskClient, user: dict[str, Any]) -> None:
    response = client.post("/actions/acts.conflict", headers=bearer(user["access_token"]))
    body = problem(response, 409, "NAME_TAKEN")
    assert body["detail"] == "That name is taken."


def test_an_unexpected_handler_error_is_500_without_internals(
    client: FlaskClient, user: dict[str, Any], log_output: io.StringIO
) -> None:
    response = client.post("/actions/acts.crash", headers=bearer(user["access_token"]))
    body = problem(response, 500, "INTERNAL_ERROR")
    text = response.get_data(as_text=True)
    assert "hunter2" not in text
    assert "RuntimeError" not in text
    assert "Traceback" not in text
    assert body["detail"] == "An unexpected error occurred."
    assert any(r.get("message") == "unhandled exception" for r in logged(log_output))


def test_a_result_that_breaks_its_schema_is_a_500(
    client: FlaskClient, log_output: io.StringIO
) -> None:
    problem(client.post("/actions/acts.bad-result"), 500, "INTERNAL_ERROR")
    records = [r for r in logged(log_output) if "result does not match" in r.get("message", "")]
    assert records
    assert "not a number" not in log_output.getvalue()


def test_before_execute_callbacks_see_the_action_and_can_refuse(
    app: Flask, client: FlaskClient, user: dict[str, Any]
) -> None:
    seen: list[tuple[str, str | None]] = []

    def limit(action: Action, context: ActionContext) -> None:
        seen.append((action.name, context.principal.id if context.principal else None))
        if action.rate_limit:
            raise TooManyRequests("Slow down.", retry_after=3)

    manager_of(app).actions.before_execute.append(limit)
    assert client.post("/actions/acts.jwt", headers=bearer(user["access_token"])).status_code == 200
    response = client.post("/actions/acts.limited")
    problem(response, 429, "RATE_LIMITED")
    assert response.headers["Retry-After"] == "3"
    assert seen == [("acts.jwt", user["user"]["id"]), ("acts.limited", None)]


def test_before_execute_runs_after_roles_and_before_validation(
    app: Flask, client: FlaskClient, user: dict[str, Any]
) -> None:
    calls: list[str] = []
    manager_of(app).actions.before_execute.append(lambda action, context: calls.append(action.name))
    problem(
        client.post("/actions/acts.admin", headers=bearer(user["access_token"])), 403, "FORBIDDEN"
    )
    problem(client.post("/actions/acts.validate", json={}), 400, "VALIDATION_ERROR")
    assert calls == ["acts.validate"]


def test_after_execute_callbacks_see_every_outcome_and_cannot_break_the_answer(
    app: Flask, client: FlaskClient, user: dict[str, Any], log_output: io.StringIO
) -> None:
    seen: list[Execution] = []

    def broken(execution: Execution) -> None:
        raise RuntimeError("metrics are down")

    callbacks = manager_of(app).actions.after_execute
    callbacks.extend([seen.append, broken])
    token = bearer(user["access_token"])
    assert client.post("/actions/acts.jwt", headers=token).status_code == 200
    problem(client.post("/actions/acts.conflict", headers=token), 409, "NAME_TAKEN")
    assert [(e.action.name, e.status, e.code, e.outcome) for e in seen] == [
        ("acts.jwt", 200, None, "ok"),
        ("acts.conflict", 409, "NAME_TAKEN", "rejected"),
    ]
    assert seen[0].context.principal is not None
    assert all(e.seconds >= 0 for e in seen)
    assert "after_execute callback failed" in log_output.getvalue()


def test_a_timeout_is_enforced_under_gevent(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(executor_module, "gevent_active", lambda: True)
    response = client.post("/actions/acts.nap", json={"seconds": 0.5})
    problem(response, 503, "ACTION_TIMEOUT")
    assert client.post("/actions/acts.nap", json={"seconds": 0}).status_code == 200


def test_a_timeout_is_only_logged_in_threads(client: FlaskClient, log_output: io.StringIO) -> None:
    response = client.post("/actions/acts.nap", json={"seconds": 0.1})
    assert response.get_json() == {"result": {"slept": 0.1}}
    records = [r for r in logged(log_output) if r.get("message") == "action exceeded its timeout"]
    assert records
    assert records[0]["action"] == "acts.nap"
