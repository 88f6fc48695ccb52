"""``flask actions list|check`` and ``flask audit tail``, as the Flask CLI runs them."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from click.testing import Result
from flask import Flask
from flask.testing import FlaskClient

from core.testing import bearer
from tests.actions.conftest import audit_rows


def flask(app: Flask, *args: str) -> Result:
    result: Result = app.test_cli_runner().invoke(args=list(args))
    return result


def test_actions_list_shows_every_action_with_auth_and_handler(app: Flask) -> None:
    result = flask(app, "actions", "list")
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()}
    assert "auth=public" in lines["system.ping"]
    assert "audit=off" in lines["system.ping"]
    assert "core.system_actions:ping" in lines["system.ping"]
    assert "(actions/system.yaml:3)" in lines["system.ping"]
    assert "roles=admin scopes=acts:write" in lines["acts.mixed"]
    assert "rate_limit=1000/second" in lines["acts.limited"]
    assert "modules.notes.handlers:create" in lines["notes.create"]


def test_actions_check_passes_on_valid_declarations(app: Flask) -> None:
    result = flask(app, "actions", "check")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: ")


def test_actions_check_reads_the_files_again_and_fails_listing_problems(
    app: Flask, acts_package: str, tmp_path: Path
) -> None:
    declarations = tmp_path / acts_package / "acts" / "actions.yaml"
    declarations.write_text(
        declarations.read_text()
        + "  - name: acts.broken\n    description: x\n    handler: .:nothing\n    auth: jwt\n"
    )
    result = flask(app, "actions", "check")
    assert result.exit_code == 1
    assert "acts/actions.yaml" in result.output
    assert f"action 'acts.broken': handler '{acts_package}.acts:nothing'" in result.output
    assert "1 problem(s)" in result.output


def test_audit_tail_prints_the_last_rows_oldest_first(
    app: Flask, client: FlaskClient, user: dict[str, Any]
) -> None:
    marker = uuid.uuid4().hex
    for index in range(3):
        client.post(
            "/actions/acts.jwt",
            headers={"X-Request-ID": f"{marker}-{index}", **bearer(user["access_token"])},
        )
    audit_rows(app)  # wait for the writer
    result = flask(app, "audit", "tail", "-n", "2")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 2
    assert lines[0].endswith(f"{marker}-1")
    assert lines[1].endswith(f"{marker}-2")
    assert f"action  acts.jwt  user:{user['user']['id']}  ok  200" in lines[1]
