"""OpenTelemetry traces exported by the real OTLP/HTTP exporter to a receiver that decodes
the protobuf: a server span per request continuing an incoming ``traceparent``, the limiter's
one Redis call, actions and the stores as its children, attributes that say what happened
without a secret, log lines carrying the ids, and nothing at all while tracing is off."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from flask import Flask
from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor

from core.testing import AppFactory, bearer, captured_log, manager_of
from modules.auth.testing import PASSWORD, user_with_tokens
from tests.production.helpers import Gunicorn, json_lines
from tests.support.otlp import OtlpReceiver, Span

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


def exported(app: Flask, receiver: OtlpReceiver, name: str, count: int = 1) -> list[Span]:
    """Flush the app's spans and return the ones called ``name`` (at least ``count``)."""
    tracing = manager_of(app).tracing
    assert tracing is not None
    assert tracing.flush()
    return [
        s
        for s in receiver.wait_for(lambda spans: len([s for s in spans if s.name == name]) >= count)
        if s.name == name
    ]


def children(receiver: OtlpReceiver, parent: Span) -> list[Span]:
    return [span for span in receiver.spans if span.child_of(parent)]


def no_secret_in(spans: list[Span], *secrets: str) -> None:
    text = json.dumps([span.attributes for span in spans], default=repr)
    for secret in secrets:
        assert secret not in text


@pytest.fixture
def log_lines(traced_app: Flask) -> Iterator[io.StringIO]:
    with captured_log() as buffer:
        yield buffer


def test_tracing_is_off_without_an_otlp_endpoint(make_app: AppFactory) -> None:
    app = make_app()
    manager = manager_of(app)
    assert manager.tracing is None
    assert manager.tracer is None
    assert manager.rate_limiter.tracer is None
    assert manager.actions.tracer is None
    assert not RedisInstrumentor().is_instrumented_by_opentelemetry
    assert not PymongoInstrumentor().is_instrumented_by_opentelemetry
    assert app.test_client().get("/health/live").status_code == 200


def test_a_request_is_a_server_span_that_continues_the_callers_trace(
    traced_app: Flask, receiver: OtlpReceiver
) -> None:
    client = traced_app.test_client()
    _, tokens = user_with_tokens(client)
    response = client.get(
        "/userauth/probe/private",
        headers={**bearer(tokens["access_token"]), "traceparent": TRACEPARENT},
    )
    assert response.status_code == 200

    [server] = exported(traced_app, receiver, "GET /userauth/probe/private")
    assert (server.trace_id, server.parent_id, server.kind) == (TRACE_ID, PARENT_ID, "server")
    assert server.attributes == {
        "http.request.method": "GET",
        "http.route": "/userauth/probe/private",
        "http.response.status_code": 200,
        "enduser.kind": "user",
        "request.id": response.headers["X-Request-ID"],
    }
    assert server.resource["service.name"] == "python-base-04"
    assert server.scope == "python-base-04"
    assert receiver.content_types == {"application/x-protobuf"}

    [limiter] = [s for s in children(receiver, server) if s.name == "rate_limit"]
    assert limiter.kind == "client"
    assert limiter.attributes["rate_limit.outcome"] == "allowed"
    assert set(limiter.attributes["rate_limit.levels"]) == {"ip", "user"}
    no_secret_in(receiver.spans, tokens["access_token"], tokens["refresh_token"], PASSWORD)


def test_a_new_trace_starts_without_traceparent_and_refusals_carry_their_code(
    traced_app: Flask, receiver: OtlpReceiver
) -> None:
    client = traced_app.test_client()
    assert client.get("/userauth/probe/private").status_code == 401
    assert client.get("/public/probe/boom").status_code == 500

    [refused] = exported(traced_app, receiver, "GET /userauth/probe/private")
    assert refused.parent_id == ""
    assert refused.attributes["http.response.status_code"] == 401
    assert refused.attributes["error.type"] == "AUTH_REQUIRED"
    assert refused.attributes["enduser.kind"] == "anonymous"
    assert refused.status == "unset"  # a client error is not the server's
    [boom] = exported(traced_app, receiver, "GET /public/probe/boom")
    assert boom.attributes["error.type"] == "INTERNAL_ERROR"
    assert boom.status == "error"
    assert boom.trace_id != refused.trace_id


def test_the_stores_are_spans_of_the_request(traced_app: Flask, receiver: OtlpReceiver) -> None:
    client = traced_app.test_client()
    assert client.get("/public/probe/docs").status_code == 200
    assert client.get("/public/probe/sql").status_code == 200

    [docs] = exported(traced_app, receiver, "GET /public/probe/docs")
    [mongo] = [
        s
        for s in children(receiver, docs)
        if s.attributes.get("db.mongodb.collection") == "probe_docs"
    ]
    assert (mongo.kind, mongo.attributes["db.system"]) == ("client", "mongodb")
    assert mongo.attributes["db.statement"] == "aggregate"  # the command, never the documents
    # Background store calls (the readiness checks' pings here) start no trace of their own.
    assert [s.name for s in receiver.spans if s.kind == "client" and not s.parent_id] == []
    [sql] = exported(traced_app, receiver, "GET /public/probe/sql")
    [postgres] = [
        s for s in children(receiver, sql) if s.attributes.get("db.system") == "postgresql"
    ]
    assert postgres.attributes["db.statement"] == "SELECT 1 AS one"


def test_an_action_is_a_span_of_its_request_with_its_outcome(
    traced_app: Flask, receiver: OtlpReceiver
) -> None:
    client = traced_app.test_client()
    _, tokens = user_with_tokens(client)
    secret_param = f"param-{uuid.uuid4().hex}"
    ok = client.post(
        "/actions/system.echo", json={"note": secret_param}, headers=bearer(tokens["access_token"])
    )
    assert ok.status_code == 200
    assert client.post("/actions/system.echo", json={"x": 1}).status_code == 401

    requests = exported(traced_app, receiver, "POST /actions/<name>", count=2)
    [served] = [s for s in requests if s.attributes["http.response.status_code"] == 200]
    [action] = [s for s in children(receiver, served) if s.name == "action system.echo"]
    assert action.attributes == {
        "action.name": "system.echo",
        "enduser.kind": "user",
        "action.outcome": "ok",
        "http.response.status_code": 200,
    }
    no_secret_in(receiver.spans, secret_param, tokens["access_token"])


def test_every_log_line_of_a_traced_request_carries_its_trace_and_span_ids(
    traced_app: Flask, receiver: OtlpReceiver, log_lines: io.StringIO
) -> None:
    client = traced_app.test_client()
    response = client.post(
        "/public/probe/log", json={"message": "hello"}, headers={"traceparent": TRACEPARENT}
    )
    assert response.status_code == 200
    [server] = exported(traced_app, receiver, "POST /public/probe/log")

    lines = [json.loads(line) for line in log_lines.getvalue().splitlines() if line.strip()]
    [said] = [line for line in lines if line["message"] == "probe says hello"]
    assert (said["trace_id"], said["span_id"]) == (TRACE_ID, server.span_id)
    assert all(line["trace_id"] == TRACE_ID for line in lines if "request_id" in line)


def test_a_ratio_of_zero_records_no_new_trace_but_follows_a_sampled_caller(
    make_app: AppFactory, receiver: OtlpReceiver
) -> None:
    app = make_app({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "TRACING_SAMPLE_RATIO": "0"})
    client = app.test_client()
    assert client.get("/public/probe/docs").status_code == 200
    assert client.get("/public/probe/sql", headers={"traceparent": TRACEPARENT}).status_code == 200

    [followed] = exported(app, receiver, "GET /public/probe/sql")
    assert followed.trace_id == TRACE_ID
    assert receiver.named("GET /public/probe/docs") == []


def test_the_endpoint_settings_follow_the_otlp_rules() -> None:
    from config.settings import Settings
    from core.managers.tracing import traces_endpoint

    assert not Settings().tracing_enabled
    base = Settings(otel_exporter_otlp_endpoint="http://collector:4318/")
    assert base.tracing_enabled
    assert traces_endpoint(base) == "http://collector:4318/v1/traces"
    full = Settings(
        otel_exporter_otlp_endpoint="http://collector:4318",
        otel_exporter_otlp_traces_endpoint="https://traces.example/otlp/v1/spans",
    )
    assert traces_endpoint(full) == "https://traces.example/otlp/v1/spans"
    assert not Settings(
        otel_exporter_otlp_endpoint="http://c:4318", otel_sdk_disabled=True
    ).tracing_enabled
    with_password = Settings(otel_exporter_otlp_endpoint="http://u:pw-7f3a@collector:4318")
    assert "pw-7f3a" in with_password.secret_values()


def test_a_traced_request_names_its_trace_in_the_response_and_gunicorns_access_log(
    app_env: dict[str, str], receiver: OtlpReceiver, tmp_path: Path
) -> None:
    server = Gunicorn(
        {**app_env, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url}, tmp_path / "g.log", ()
    )
    try:
        server.wait_ready()
        response = requests.post(
            f"{server.url}/public/probe/log",
            json={"message": "from the worker"},
            headers={"traceparent": TRACEPARENT},
            timeout=10,
        )
        assert response.status_code == 200
        version, trace_id, span_id, flags = response.headers["traceresponse"].split("-")
        assert (version, trace_id, flags) == ("00", TRACE_ID, "01")
        spans = receiver.wait_for(
            lambda found: any(s.name == "POST /public/probe/log" for s in found), timeout=30
        )
        [served] = [s for s in spans if s.name == "POST /public/probe/log"]
        assert served.span_id == span_id
    finally:
        server.stop()
    lines = json_lines(server.output())
    [said] = [line for line in lines if line["message"] == "probe says from the worker"]
    [access] = [line for line in lines if line["logger"] == "gunicorn.access"
                and line.get("path") == "/public/probe/log"]  # fmt: skip
    for line in (said, access):
        assert (line["trace_id"], line["span_id"]) == (TRACE_ID, span_id)
