"""Structured logs carry the request id and never a secret, token, password or API key."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from app import create_app
from core.log import REDACTED, ConsoleFormatter, JsonFormatter, Redactor

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
    "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
)
METRICS_TOKEN = "metrics-token-abcdef"
REDIS_PASSWORD = "redis-pass-123456"


def offline_app(tmp_path: Path, **environ: str) -> Any:
    return create_app(
        {
            "APP_ENV": "test",
            "LOG_FORMAT": "json",
            "SECRETS_DIR": str(tmp_path),
            "MODULES_PACKAGES": "tests.support.modules",
            "METRICS_TOKEN": METRICS_TOKEN,
            "REDIS_URL": f"redis://:{REDIS_PASSWORD}@127.0.0.1:1/0",
            **environ,
        },
        start=False,
    )


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_json_log_lines_carry_the_request_id_and_redact_everything_sensitive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = offline_app(tmp_path).test_client()
    capsys.readouterr()
    response = client.post(
        "/public/probe/log",
        json={
            "message": (
                f"token {JWT} auth=Bearer abc.def.ghi password=hunter22 "
                f"metrics {METRICS_TOKEN} url redis://:{REDIS_PASSWORD}@r:6379 "
                "key pbk_AbCdEf12.Zm9vYmFyYmF6cXV4cXV1eHh5eg"
            ),
            "fields": {"password": "hunter22", "nested": {"api_key": "k-1"}, "ok": "visible"},
        },
        headers={"X-Request-ID": "req-log-1"},
    )
    assert response.status_code == 200
    output = capsys.readouterr().err
    (line,) = [entry for entry in json_lines(output) if entry["message"].startswith("probe says")]

    assert line["request_id"] == "req-log-1"
    assert line["level"] == "WARNING"
    assert line["fields"] == {
        "password": REDACTED,
        "nested": {"api_key": REDACTED},
        "ok": "visible",
    }
    for secret in (JWT, "abc.def.ghi", "hunter22", METRICS_TOKEN, REDIS_PASSWORD, "Zm9vYmFy"):
        assert secret not in output
    assert line["message"].count(REDACTED) == 6


def test_tracebacks_of_unhandled_errors_are_logged_redacted_and_never_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = offline_app(tmp_path).test_client()
    capsys.readouterr()
    response = client.get(f"/public/probe/boom?secret={METRICS_TOKEN}")

    assert response.status_code == 500
    assert METRICS_TOKEN.encode() not in response.data
    assert b"Traceback" not in response.data
    output = capsys.readouterr().err
    (line,) = [e for e in json_lines(output) if e["message"] == "unhandled exception"]
    assert "RuntimeError: exploded with [REDACTED]" in line["exc"]
    assert line["request_id"] == response.headers["X-Request-ID"]
    assert METRICS_TOKEN not in output


def test_console_format_is_readable_and_redacted() -> None:
    redactor = Redactor(["s3cr3t-value"])
    record = logging.makeLogRecord(
        {"name": "demo", "levelname": "INFO", "msg": "using s3cr3t-value", "user": "ada"}
    )
    line = ConsoleFormatter(redactor).format(record)
    assert "demo" in line
    assert f"using {REDACTED}" in line
    assert "user=ada" in line


def test_short_values_are_not_treated_as_secrets() -> None:
    # A 3-character "secret" would turn every occurrence of e.g. "app" into [REDACTED].
    redactor = Redactor(["app"])
    assert redactor.text("app started") == "app started"


def test_json_formatter_keeps_valid_json_for_odd_values() -> None:
    record = logging.makeLogRecord({"msg": 'quote " and \n newline', "blob": b"\x00\xff"})
    entry = json.loads(JsonFormatter(Redactor()).format(record))
    assert entry["message"] == 'quote " and \n newline'
    assert entry["blob"] == str(b"\x00\xff")
