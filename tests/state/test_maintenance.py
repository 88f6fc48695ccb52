"""Maintenance mode: switched by the CLI on one instance, enforced by every instance."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import Result
from flask import Flask
from flask.testing import FlaskClient

from core.devstack import RedisServer
from core.managers.state import StateManager, maintenance
from core.testing import AppFactory, manager_of, problem
from tests.support.servers import stopped, wait_until

MESSAGE = "Upgrading the database, back at 14:00 UTC."


def cli(app: Flask, *args: str) -> Result:
    result: Result = app.test_cli_runner().invoke(args=["maintenance", *args])
    return result


def echo(client: FlaskClient) -> Any:
    return client.post("/public/probe/echo", json={"ping": 1})


def in_maintenance(client: FlaskClient) -> bool:
    return bool(echo(client).status_code == 503)


@pytest.fixture
def operator(make_app: AppFactory) -> Flask:
    """The app the Flask CLI builds: no start-up work, no pub/sub listener."""
    return make_app(start=False)


def test_maintenance_switched_on_by_the_cli_is_seen_by_another_instance(
    operator: Flask, make_app: AppFactory
) -> None:
    client = make_app().test_client()
    assert echo(client).status_code == 200  # the instance has cached "off"

    result = cli(operator, "on", "--message", MESSAGE)
    assert result.exit_code == 0, result.output
    assert f"maintenance on: {MESSAGE}" in result.output

    wait_until(lambda: in_maintenance(client), what="503 on the other instance")
    body = problem(echo(client), 503, "MAINTENANCE")
    assert body["detail"] == MESSAGE
    assert problem(client.get("/public/no-such-route"), 503, "MAINTENANCE")
    assert echo(operator.test_client()).status_code == 503  # and on the operator's instance


def test_health_metrics_and_admin_routes_stay_reachable_during_maintenance(
    operator: Flask, make_app: AppFactory
) -> None:
    client = make_app().test_client()
    cli(operator, "on")
    wait_until(lambda: in_maintenance(client), what="maintenance on")

    assert client.get("/health/live").status_code == 200
    assert client.get("/health/ready").status_code == 200
    assert client.get("/metrics").status_code == 200
    # The switch declares itself open during maintenance: without a token it is 401, not 503.
    problem(
        client.post("/userauth/admin/maintenance", json={"enabled": False}), 401, "AUTH_REQUIRED"
    )
    assert problem(echo(client), 503, "MAINTENANCE")["detail"] == maintenance.DEFAULT_MESSAGE


def test_turning_maintenance_off_restores_service_everywhere(
    operator: Flask, make_app: AppFactory
) -> None:
    client = make_app().test_client()
    cli(operator, "on", "--message", MESSAGE)
    wait_until(lambda: in_maintenance(client), what="maintenance on")

    result = cli(operator, "off")
    assert result.exit_code == 0, result.output
    assert "maintenance off" in result.output
    wait_until(lambda: not in_maintenance(client), what="maintenance off")
    assert echo(client).get_json() == {"received": {"ping": 1}}


def test_status_reports_the_mode_and_message(operator: Flask) -> None:
    assert "maintenance off (version 0, never changed)" in cli(operator, "status").output
    cli(operator, "on", "--message", MESSAGE)
    assert f"maintenance on: {MESSAGE} (version 1," in cli(operator, "status").output


def test_switching_to_the_current_mode_changes_nothing(operator: Flask) -> None:
    state: StateManager = manager_of(operator).state
    assert cli(operator, "off").exit_code == 0
    cli(operator, "on", "--message", MESSAGE)
    cli(operator, "on", "--message", MESSAGE)
    assert state.refresh(maintenance.MACHINE).version == 1
    cli(operator, "on", "--message", "New message")  # on -> on updates the message
    assert maintenance.status(state).message == "New message"
    assert maintenance.status(state).to_dict() == {"enabled": True, "message": "New message"}


def test_the_cli_fails_clearly_while_redis_is_down(
    operator: Flask, redis_server: RedisServer
) -> None:
    with stopped(redis_server):
        result = cli(operator, "on", "--message", MESSAGE)
    assert result.exit_code == 1
    assert "redis is unavailable" in result.output
    assert "maintenance off" in cli(operator, "status").output
