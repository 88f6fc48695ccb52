"""Structured logs carry the request id and never a secret, token, password or API key."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from app import create_app
from core.log import REDACTED, ConsoleFormatter, JsonFormatter, Redactor, line_writer

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


def _logger(name: str, formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_the_line_writer_writes_what_the_logger_writes_redacted_alike() -> None:
    """gunicorn's access line skips the LogRecord (gunicorn.conf.py): the same line, the same
    redaction, the logger's level still obeyed."""
    logger, stream = _logger("test.line_writer", JsonFormatter(Redactor([METRICS_TOKEN])))
    fields = {
        "method": "GET",
        "path": f"/things/{JWT}",
        "status": 200,
        "duration_ms": 1.5,
        "bytes": None,
        "user_agent": f"probe Bearer abc.def {METRICS_TOKEN}",
        "token": "plain-looking",
    }
    message = f"GET /things/{JWT} 200"
    logger.info(message, extra={**fields, "request_id": "req-1"})
    write = line_writer(logger)
    assert write is not None
    write(logging.INFO, message, fields, "req-1")
    write(logging.DEBUG, "below the logger's level", {}, None)
    logger.disabled = True
    write(logging.INFO, "a disabled logger", {}, None)

    output = stream.getvalue()
    by_logger, by_writer = [json.loads(line) for line in output.splitlines()]
    for line in (by_logger, by_writer):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line.pop("ts"))
    assert list(by_writer.items()) == list(by_logger.items())
    assert list(by_writer)[:5] == ["level", "logger", "message", "request_id", "method"]
    assert by_writer["path"] == f"/things/{REDACTED}"
    assert by_writer["message"] == f"GET /things/{REDACTED} 200"
    assert by_writer["user_agent"] == f"probe Bearer {REDACTED} {REDACTED}"
    assert by_writer["token"] == REDACTED
    for secret in (JWT, METRICS_TOKEN, "abc.def", "plain-looking"):
        assert secret not in output


def test_the_line_writer_is_refused_where_logging_would_do_more() -> None:
    json_formatter = JsonFormatter(Redactor())
    logger, _ = _logger("test.line_writer.console", ConsoleFormatter(Redactor()))
    assert line_writer(logger) is None  # not the JSON lines
    logger, _ = _logger("test.line_writer.filtered", json_formatter)
    logger.addFilter(lambda record: True)
    assert line_writer(logger) is None
    logger, _ = _logger("test.line_writer.propagating", json_formatter)
    logger.propagate = True
    assert line_writer(logger) is None
    logger, _ = _logger("test.line_writer.handler_filter", json_formatter)
    logger.handlers[0].addFilter(lambda record: True)
    assert line_writer(logger) is None
