"""Structured logging: JSON lines (prod default) or console lines (dev default), with the
request id on every line and secrets redacted wherever they appear.

Redaction runs in the formatter, so it covers every logger (ours, Werkzeug's, libraries')
and every part of a record: the message, structured ``extra`` fields and tracebacks. It
removes the exact values of secret settings, JWTs, bearer credentials, API keys, URL
passwords and ``password=...``-style pairs.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flask import g, has_request_context

REDACTED = "[REDACTED]"

_SENSITIVE_KEY = re.compile(
    r"pass(word|wd)?|secret|token|api[_-]?key|authorization|cookie|credential|private[_-]?key",
    re.IGNORECASE,
)
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # JSON Web Tokens (header.payload.signature, both first parts base64url JSON objects).
    (re.compile(r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), REDACTED),
    # Authorization header values.
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), rf"\1 {REDACTED}"),
    # API keys: "<prefix>.<secret>" as issued by the ApiKeyManager.
    (re.compile(r"\bpbk_[A-Za-z0-9]{8,}\.[A-Za-z0-9_-]{16,}"), REDACTED),
    # Passwords inside URLs.
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/?#\s@]*:)[^@/\s]+(@)"), rf"\1{REDACTED}\2"),
    # key=value and "key": "value" pairs with a sensitive key.
    (
        re.compile(
            r"(?i)\b([\w-]*(?:password|passwd|secret|token|api[_-]?key)[\w-]*)"
            r"(\"?'?\s*[:=]\s*\"?'?)([^\s\"'&,;}\]]+)"
        ),
        rf"\1\2{REDACTED}",
    ),
]
#: Every _PATTERNS match contains one of these; lines without any skip the substitutions.
#: Searched in the lower-cased text: a case-sensitive search is several times faster than an
#: IGNORECASE one, and this runs on every string of every log line.
_MARKERS = re.compile(r"eyj|bearer|basic|pbk_|://|pass|secret|token|api[_-]?key")
_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}
#: Built once: ``json.dumps`` with options builds an encoder on every call.
_ENCODER = json.JSONEncoder(default=str, ensure_ascii=False)
#: (second, its ``YYYY-MM-DDTHH:MM:SS`` in UTC): lines of the same second share the formatting.
_second: tuple[int, str] = (-1, "")


class Redactor:
    """Removes secrets from strings and structures. Thread-safe; values can be added later."""

    def __init__(self, secret_values: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._values: tuple[str, ...] = ()
        self.add_values(secret_values)

    def add_values(self, values: Iterable[str]) -> None:
        # Very short values would redact ordinary words; secrets are never that short.
        new = {v for v in values if isinstance(v, str) and len(v) >= 6}
        with self._lock:
            self._values = tuple(sorted(set(self._values) | new, key=len, reverse=True))

    def text(self, value: str) -> str:
        for secret in self._values:
            if secret in value:
                value = value.replace(secret, REDACTED)
        # Most lines (access logs, plain messages) contain none of the patterns' markers:
        # one cheap search saves five substitutions on every line.
        if _MARKERS.search(value.lower()):
            for pattern, replacement in _PATTERNS:
                value = pattern.sub(replacement, value)
        return value

    def data(self, value: Any, key: str | None = None) -> Any:
        if key is not None and _sensitive_key(key) and value not in (None, ""):
            return REDACTED
        if isinstance(value, str):
            return self.text(value)
        if value is None or isinstance(value, int | float):  # bool is an int
            return value
        if isinstance(value, dict):
            return {k: self.data(v, str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple | set):
            return [self.data(v) for v in value]
        return self.text(str(value))


@functools.lru_cache(maxsize=1024)
def _sensitive_key(key: str) -> bool:
    """Whether values under ``key`` are secrets; log records repeat the same few keys."""
    return _SENSITIVE_KEY.search(key) is not None


def _timestamp(created: float) -> str:
    """``2026-12-02T05:00:00.123Z`` for a ``time.time()`` value (milliseconds truncated, as
    a LogRecord's ``msecs``)."""
    global _second
    whole = int(created)
    second, text = _second
    if second != whole:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _second = (whole, text)
    return f"{text}.{int((created - whole) * 1000):03d}Z"


def current_request_id() -> str | None:
    if has_request_context():
        request_id: str | None = g.get("request_id")
        return request_id
    return None


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")}


class _BaseFormatter(logging.Formatter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def _exception_text(self, record: logging.LogRecord) -> str | None:
        if record.exc_info:
            return self.redactor.text(self.formatException(record.exc_info))
        if record.stack_info:
            return self.redactor.text(self.formatStack(record.stack_info))
        return None


class JsonFormatter(_BaseFormatter):
    """One JSON object per line: ts, level, logger, message, request_id, extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        return self.line(
            record.name,
            record.levelname,
            record.getMessage(),
            _extras(record),
            created=record.created,
            request_id=getattr(record, "request_id", None) or current_request_id(),
            exc=self._exception_text(record),
        )

    def line(
        self,
        logger: str,
        level: str,
        message: str,
        fields: Mapping[str, Any],
        *,
        created: float,
        request_id: str | None = None,
        exc: str | None = None,
    ) -> str:
        """The line :meth:`format` writes for a record of these parts, for a caller that has
        the parts without a record (gunicorn's access line, :func:`write_line`): the same
        fields in the same order, redacted by the same rules."""
        entry: dict[str, Any] = {
            "ts": _timestamp(created),
            "level": level,
            "logger": logger,
            "message": self.redactor.text(message),
        }
        if request_id:
            entry["request_id"] = request_id
        data = self.redactor.data
        for key, value in fields.items():
            entry[key] = data(value, key)
        if exc:
            entry["exc"] = exc
        return _ENCODER.encode(entry)


class ConsoleFormatter(_BaseFormatter):
    """``12:00:00 INFO  logger [request-id] message key=value`` for humans."""

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None) or current_request_id()
        parts = [
            time.strftime("%H:%M:%S", time.localtime(record.created)),
            f"{record.levelname:<7}",
            record.name,
        ]
        if request_id:
            parts.append(f"[{request_id}]")
        parts.append(self.redactor.text(record.getMessage()))
        extras = self.redactor.data(_extras(record))
        parts.extend(f"{k}={v}" for k, v in extras.items())
        line = " ".join(parts)
        exc = self._exception_text(record)
        return f"{line}\n{exc}" if exc else line


_HANDLER_NAME = "python-base-04"


class _SafeStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A failed write must not fall back to logging's default, which prints the raw,
    unredacted message and arguments to stderr."""

    def handleError(self, record: logging.LogRecord) -> None:
        _write_failed(record.name)


def _write_failed(logger: str) -> None:
    """Name the failure of a write on the process' own stderr, never the line itself."""
    error = sys.exc_info()[0]
    name = error.__name__ if error is not None else "error"
    with contextlib.suppress(OSError, ValueError, AttributeError):
        if sys.__stderr__ is not None:
            sys.__stderr__.write(f"logging error in {logger}: {name}\n")


#: ``write(level, message, fields, request_id)``: one line, as ``logger.log`` would write it.
LineWriter = Callable[[int, str, Mapping[str, Any], "str | None"], None]


def line_writer(logger: logging.Logger) -> LineWriter | None:
    """A writer of ``logger``'s lines that skips the LogRecord and logging's dispatch, for a
    line written on every request (gunicorn's access line): it writes exactly what
    ``logger.log(level, message, extra={**fields, "request_id": request_id})`` writes.

    Only where that is all logging would do: the logger has handlers, does not propagate
    and has no filters, and every handler is a plain stream handler with the framework's
    :class:`JsonFormatter` and no filter. Otherwise None: use the logger. The logger's level
    and ``disabled`` are still read on every line.
    """
    handlers = tuple(logger.handlers)
    plain = (logging.StreamHandler, _SafeStreamHandler)
    if not handlers or logger.propagate or logger.filters:
        return None
    if any(
        type(h) not in plain or h.filters or not isinstance(h.formatter, JsonFormatter)
        for h in handlers
    ):
        return None
    targets = [(h, h.formatter) for h in handlers if isinstance(h.formatter, JsonFormatter)]
    name = logger.name

    def write(level: int, message: str, fields: Mapping[str, Any], request_id: str | None) -> None:
        if not logger.isEnabledFor(level):
            return
        created = time.time()
        level_name = logging.getLevelName(level)
        for handler, formatter in targets:
            if level < handler.level:
                continue
            handler.acquire()
            try:
                line = formatter.line(
                    name, level_name, message, fields, created=created, request_id=request_id
                )
                stream = handler.stream  # type: ignore[attr-defined]
                stream.write(line + handler.terminator)  # type: ignore[attr-defined]
                stream.flush()
            except RecursionError:
                raise
            except Exception:  # noqa: BLE001 - as logging's emit: a failed write fails no request
                _write_failed(name)
            finally:
                handler.release()

    return write


def framework_handler() -> logging.Handler | None:
    """The handler :func:`configure_logging` installed on the root logger, if any."""
    return next((h for h in logging.getLogger().handlers if h.get_name() == _HANDLER_NAME), None)


def configure_logging(level: str, fmt: str, redactor: Redactor) -> logging.Handler:
    """Install (or replace) the framework's handler on the root logger. Idempotent."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
    handler = _SafeStreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter(redactor) if fmt == "json" else ConsoleFormatter(redactor))
    root.addHandler(handler)
    root.setLevel(level)
    # Engine.IO/Socket.IO packet logs are noise and may carry payloads: off unless debugging.
    for noisy in ("engineio.server", "socketio.server", "urllib3", "pymongo"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    return handler
