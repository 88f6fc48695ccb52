"""The audit log: one row per execution of an audited action, written in the background."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from core.devstack import PostgresServer
from core.errors import DependencyUnavailable
from core.managers.actions.audit import AuditRecord, AuditWriter, Digest, postgres_sink
from core.testing import TEST_ENCRYPTION_KEY, AppFactory, bearer, manager_of, problem
from tests.actions.conftest import audit_rows
from tests.support.servers import stopped


def rid() -> str:
    return f"audit-{uuid.uuid4().hex}"


def rows_for(app: Flask, request_id: str) -> list[dict[str, Any]]:
    return audit_rows(app, "request_id = %s", (request_id,))


def record(action: str = "acts.unit", request_id: str | None = None) -> AuditRecord:
    return AuditRecord(
        occurred_at=datetime.now(UTC),
        kind="action",
        action=action,
        principal_type=None,
        principal_id=None,
        outcome="ok",
        status=200,
        duration_ms=1.0,
        request_id=request_id,
        params_digest=None,
    )


def test_an_audited_execution_writes_one_row_with_who_what_and_how(
    app: Flask, client: FlaskClient, user: dict[str, Any]
) -> None:
    request_id = rid()
    params = {"secret": "s3cr3t-value", "n": 1}
    response = client.post("/actions/acts.open", json=params, headers={"X-Request-ID": request_id})
    assert response.status_code == 200
    headers = {"X-Request-ID": request_id, **bearer(user["access_token"])}
    assert client.post("/actions/acts.jwt", headers=headers).status_code == 200

    first, second = rows_for(app, request_id)
    assert first["kind"] == "action"
    assert first["action"] == "acts.open"
    assert (first["principal_type"], first["principal_id"]) == (None, None)
    assert (first["outcome"], first["status"]) == ("ok", 200)
    assert first["duration_ms"] >= 0
    assert first["details"] == {}
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"))
    key = hmac.new(TEST_ENCRYPTION_KEY.encode(), b"audit-digest-key", "sha256").digest()
    assert first["params_digest"] == hmac.new(key, canonical.encode(), "sha256").hexdigest()
    assert (second["principal_type"], second["principal_id"]) == ("user", user["user"]["id"])
    assert second["action"] == "acts.jwt"


def test_no_params_are_stored_only_their_digest(app: Flask, client: FlaskClient) -> None:
    request_id = rid()
    client.post(
        "/actions/acts.open",
        json={"password": "hunter2-in-params"},
        headers={"X-Request-ID": request_id},
    )
    (row,) = rows_for(app, request_id)
    assert "hunter2-in-params" not in json.dumps(row, default=str)


def test_the_digest_ignores_key_order() -> None:
    digest = Digest(b"k")
    assert digest({"a": 1, "b": [1, 2]}) == digest({"b": [1, 2], "a": 1})
    assert digest({"a": 1}) != digest({"a": 2})
    assert Digest(b"other")({"a": 1}) != digest({"a": 1})


def test_a_small_secret_cannot_be_recovered_from_its_digest(
    make_app: AppFactory, acts_package: str
) -> None:
    """The attack: hash every 4-digit PIN and look for the row's digest. With an unkeyed
    SHA-256 it is found in milliseconds; the keyed HMAC (AUDIT_DIGEST_KEY) defeats it."""
    app = make_app(
        {
            "MODULES_PACKAGES": f"modules,{acts_package}",
            "AUDIT_DIGEST_KEY": "an-audit-key-from-the-secrets-chain",
        }
    )
    request_id = rid()
    app.test_client().post(
        "/actions/acts.open", json={"pin": "4821"}, headers={"X-Request-ID": request_id}
    )
    (row,) = rows_for(app, request_id)
    candidates = {
        hashlib.sha256(
            json.dumps({"pin": f"{n:04d}"}, separators=(",", ":")).encode()
        ).hexdigest(): n
        for n in range(10_000)
    }
    assert row["params_digest"] not in candidates
    keyed = Digest(b"an-audit-key-from-the-secrets-chain")
    assert row["params_digest"] == keyed({"pin": "4821"})


def test_an_action_with_audit_false_writes_no_row(
    app: Flask, client: FlaskClient, user: dict[str, Any]
) -> None:
    quiet, loud = rid(), rid()
    token = bearer(user["access_token"])
    assert (
        client.post(
            "/actions/acts.quiet", json={"x": 1}, headers={"X-Request-ID": quiet, **token}
        ).status_code
        == 200
    )
    assert (
        client.post("/actions/acts.jwt", headers={"X-Request-ID": loud, **token}).status_code == 200
    )
    assert rows_for(app, quiet) == []
    assert len(rows_for(app, loud)) == 1


def test_refusals_and_failures_are_audited_with_their_outcome(
    app: Flask, client: FlaskClient, user: dict[str, Any]
) -> None:
    request_id = rid()
    headers = {"X-Request-ID": request_id, **bearer(user["access_token"])}
    problem(client.post("/actions/acts.admin", headers=headers), 403, "FORBIDDEN")
    problem(
        client.post("/actions/acts.validate", json={}, headers=headers), 400, "VALIDATION_ERROR"
    )
    problem(client.post("/actions/acts.conflict", headers=headers), 409, "NAME_TAKEN")
    problem(client.post("/actions/acts.crash", headers=headers), 500, "INTERNAL_ERROR")
    rows = rows_for(app, request_id)
    assert [(r["action"], r["outcome"], r["status"], r["details"]) for r in rows] == [
        ("acts.admin", "denied", 403, {"code": "FORBIDDEN"}),
        ("acts.validate", "invalid", 400, {"code": "VALIDATION_ERROR"}),
        ("acts.conflict", "rejected", 409, {"code": "NAME_TAKEN"}),
        ("acts.crash", "error", 500, {"code": "INTERNAL_ERROR"}),
    ]


def test_rows_queued_while_postgres_is_down_are_written_when_it_is_back(
    app: Flask, client: FlaskClient, user: dict[str, Any], postgres_server: PostgresServer
) -> None:
    request_id = rid()
    headers = {"X-Request-ID": request_id, **bearer(user["access_token"])}
    writer = manager_of(app).actions.audit
    with stopped(postgres_server):
        assert client.post("/actions/acts.jwt", headers=headers).status_code == 200
        assert not writer.flush(0.5)  # retrying, not lost
    assert len(rows_for(app, request_id)) == 1
    assert writer.stats()["failed"] == 0


def test_close_writes_every_queued_row(app: Flask) -> None:
    request_id = rid()
    writer = AuditWriter(postgres_sink(manager_of(app).database.postgres), 1000, batch_size=50)
    for _ in range(300):
        assert writer.write(record(request_id=request_id))
    writer.close()
    assert writer.stats() == {"pending": 0, "written": 300, "dropped": 0, "failed": 0}
    assert len(rows_for(app, request_id)) == 300


def test_a_full_queue_drops_rows_counts_and_logs_them(app: Flask, log_output: io.StringIO) -> None:
    release = threading.Event()
    sink = postgres_sink(manager_of(app).database.postgres)

    def slow_sink(batch: Sequence[AuditRecord]) -> None:
        release.wait(5)
        sink(batch)

    writer = AuditWriter(slow_sink, 10, batch_size=1)
    reported: list[int] = []
    writer.drop_listeners.append(reported.append)
    accepted = sum(writer.write(record()) for _ in range(25))
    release.set()
    writer.close()
    stats = writer.stats()
    assert stats["dropped"] == 25 - accepted > 0
    assert sum(reported) == stats["dropped"]
    assert stats["written"] == accepted
    assert "audit row dropped" in log_output.getvalue()


def test_close_gives_up_on_an_unreachable_database_and_reports_the_loss(
    log_output: io.StringIO,
) -> None:
    def unreachable(batch: Sequence[AuditRecord]) -> None:
        raise DependencyUnavailable("postgres")

    writer = AuditWriter(unreachable, 100)
    for _ in range(5):
        writer.write(record())
    writer.close(timeout=0.3)
    assert writer.stats() == {"pending": 0, "written": 0, "dropped": 0, "failed": 5}
    assert "audit rows lost" in log_output.getvalue()
