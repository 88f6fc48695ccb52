"""Security events: every login outcome, token reuse, logout, API key life cycle, bans and
maintenance switches become audit rows (kind ``security``), log lines and a metric, and
none of them carries a password, token or key."""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

from flask import Flask

from core.testing import AppFactory, bearer, manager_of
from modules.api_keys.testing import create_api_key
from modules.auth.testing import PASSWORD, admin_tokens, register


def security_rows(app: Flask) -> list[dict[str, Any]]:
    manager = manager_of(app)
    assert manager.actions.audit.flush(10.0)
    rows: list[dict[str, Any]] = manager.database.postgres.execute(
        "SELECT * FROM audit_log WHERE kind = 'security' ORDER BY id"
    )
    return rows


def events(rows: list[dict[str, Any]]) -> list[str]:
    return [row["action"] for row in rows]


def metric(app: Flask, event: str, outcome: str) -> float:
    value = manager_of(app).metrics.registry.get_sample_value(
        "security_events_total", {"event": event, "outcome": outcome}
    )
    return float(value or 0.0)


def test_security_events_are_recorded_without_secrets(app: Flask, log_output: io.StringIO) -> None:
    client = app.test_client()
    user = register(client)
    wrong = f"wrong-password-{uuid.uuid4().hex}"

    ok = client.post("/public/login", json={"email": user["email"], "password": PASSWORD})
    pair = ok.get_json()
    for _ in range(5):  # LOGIN_MAX_FAILURES
        client.post("/public/login", json={"email": user["email"], "password": wrong})
    locked = client.post("/public/login", json={"email": user["email"], "password": wrong})
    assert locked.status_code == 429

    # Refresh-token reuse (the theft signal), then logout.
    first = client.post("/public/refresh", json={"refresh_token": pair["refresh_token"]})
    assert first.status_code == 200
    reused = client.post("/public/refresh", json={"refresh_token": pair["refresh_token"]})
    assert reused.get_json()["code"] == "REFRESH_TOKEN_REUSED"
    admin = admin_tokens(app, client)
    assert client.post("/userauth/logout", headers=bearer(admin["access_token"])).status_code == 204

    # API keys: created, used with a wrong secret, revoked, used after revocation.
    admin = admin_tokens(app, client)
    key = create_api_key(client, admin["access_token"], ["notes:read"])
    forged = key["prefix"] + ".not-the-secret"
    assert client.get("/keyauth/whoami", headers={"X-API-Key": forged}).status_code == 401
    revoke = client.delete(f"/userauth/api-keys/{key['id']}", headers=bearer(admin["access_token"]))
    assert revoke.status_code == 204
    assert client.get("/keyauth/whoami", headers={"X-API-Key": key["key"]}).status_code == 401

    # Maintenance on and off through the admin route.
    for enabled in (True, False):
        switched = client.post(
            "/userauth/admin/maintenance",
            json={"enabled": enabled},
            headers=bearer(admin["access_token"]),
        )
        assert switched.status_code == 200

    rows = security_rows(app)
    assert events(rows) == [
        "login.ok",
        *["login.failed"] * 5,
        "login.locked",
        "refresh.reused",
        "login.ok",  # an admin's login
        "logout",
        "login.ok",
        "api_key.created",
        "api_key.invalid",
        "api_key.revoked",
        "api_key.invalid",
        "maintenance.on",
        "maintenance.off",
    ]
    by_event = {row["action"]: row for row in rows}
    assert rows[0]["principal_id"] == user["id"]
    assert (rows[1]["outcome"], rows[1]["status"]) == ("failed", 401)
    assert (rows[6]["outcome"], rows[6]["status"]) == ("denied", 429)
    assert rows[1]["details"]["ip"] == "127.0.0.1"
    assert rows[1]["request_id"]
    assert by_event["refresh.reused"]["principal_id"] == user["id"]
    assert by_event["api_key.created"]["details"]["key_id"] == key["id"]
    assert by_event["api_key.revoked"]["principal_id"] == admin["user"]["id"]
    invalid = [row for row in rows if row["action"] == "api_key.invalid"]
    assert [row["details"]["code"] for row in invalid] == ["API_KEY_INVALID"] * 2

    # Log lines: refresh-token reuse at WARNING, each event with its name.
    lines = [json.loads(line) for line in log_output.getvalue().splitlines() if line.strip()]
    logged = [line for line in lines if line.get("message") == "security event"]
    assert [line["event"] for line in logged] == events(rows)
    assert next(line for line in logged if line["event"] == "refresh.reused")["level"] == "WARNING"

    assert metric(app, "login.failed", "failed") == 5
    assert metric(app, "refresh.reused", "denied") == 1

    # Never a password, token or key, in the rows or the log.
    everything = json.dumps(rows, default=str) + log_output.getvalue()
    for secret in (
        PASSWORD,
        wrong,
        pair["access_token"],
        pair["refresh_token"],
        admin["access_token"],
        key["key"],
        key["key"].partition(".")[2],
        "not-the-secret",
    ):
        assert secret not in everything
    assert user["email"] not in json.dumps(rows, default=str)  # only its keyed digest


def test_bans_and_cli_switches_are_security_events(make_app: AppFactory) -> None:
    app = make_app(
        {"RATE_LIMIT_IP": "1/minute", "RATE_LIMIT_BAN_AFTER": "1", "RATE_LIMIT_BAN_SECONDS": "30"}
    )
    client, runner = app.test_client(), app.test_cli_runner()
    earlier = len(security_rows(app))  # the module's database is shared by its tests
    codes = [client.get("/public/probe/ip").get_json().get("code") for _ in range(4)]
    assert "BANNED" in codes
    assert runner.invoke(args=["ratelimit", "unban", "ip", "127.0.0.1"]).exit_code == 0
    assert runner.invoke(args=["maintenance", "on", "-m", "upgrade"]).exit_code == 0
    assert runner.invoke(args=["maintenance", "off"]).exit_code == 0

    rows = security_rows(app)[earlier:]
    assert events(rows) == ["ratelimit.ban", "ratelimit.unban", "maintenance.on", "maintenance.off"]
    assert rows[0]["details"] | {"level": "ip", "identifier": "127.0.0.1"} == rows[0]["details"]
    assert rows[1]["principal_type"] == "cli"
    assert metric(app, "ratelimit.ban", "denied") == 1

    tail = runner.invoke(args=["audit", "tail", "--kind", "security"])
    assert tail.exit_code == 0, tail.output
    lines = tail.output.strip().splitlines()[-len(rows) :]
    assert [line.split()[2] for line in lines] == events(rows)
    assert '"identifier": "127.0.0.1"' in lines[0]
    everything = runner.invoke(args=["audit", "tail", "--kind", "action", "-n", "5"]).output
    assert "security" not in everything
