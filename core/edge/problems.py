"""The one error path: any exception -> :class:`~core.errors.ApiError` (:func:`api_error`), and
the RFC 9457 problem document, as pure functions.

Every door answers a failure through :func:`api_error`: the HTTP problem handler, the Socket.IO
acks and connect refusals, the Engine.IO door, the metrics port, the action executor (and so
its audit rows). An ApiError is itself;
a Werkzeug HTTP error keeps its status with the contract's code; an exception that says a store
is unreachable (``dependency_of``) is 503 ``DEPENDENCY_UNAVAILABLE``, logged as a warning; any
other exception is a bug: logged with its traceback, answered 500 ``INTERNAL_ERROR`` without
its internals.

The document is :func:`problem_json`; a WSGI door in front of Flask (the Engine.IO door, the
metrics port) answers with :func:`wsgi_problem`.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException

from core.errors import ApiError, DependencyUnavailable, HttpError, InternalError

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
#: The dependency (``mongodb``, ``redis``...) an exception says is unreachable, or None
#: (``AppManager.dependency_of``, passed in by whoever builds the caller).
DependencyOf = Callable[[BaseException], str | None]
#: Werkzeug's HTTP errors (routing, body limits) mapped to the contract's codes.
HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "AUTH_REQUIRED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    408: "REQUEST_TIMEOUT",
    409: "CONFLICT",
    411: "LENGTH_REQUIRED",
    413: "PAYLOAD_TOO_LARGE",
    414: "URI_TOO_LONG",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
    431: "HEADERS_TOO_LARGE",
    501: "NOT_IMPLEMENTED",
    503: "SERVICE_UNAVAILABLE",
}
UNEXPECTED = "An unexpected error occurred."


def api_error(error: BaseException, dependency_of: DependencyOf, **context: Any) -> ApiError:
    """The ApiError ``error`` answers with (see the module docstring). ``context`` (the event,
    the action) goes into the log line of a failure. An ApiError made here has ``error`` as
    its ``__cause__``, so observers (metrics) still see what was raised."""
    if isinstance(error, ApiError):
        return error
    if isinstance(error, HTTPException):
        mapped: ApiError = _http_error(error)
    elif (dependency := dependency_of(error)) is not None:
        logger.warning(
            "dependency unavailable",
            extra={"dependency": dependency, "error": type(error).__name__, **context},
        )
        mapped = DependencyUnavailable(dependency)
    else:
        logger.error("unhandled exception", exc_info=error, extra=context)
        mapped = InternalError(UNEXPECTED)
    mapped.__cause__ = error
    return mapped


def unexpected(error: ApiError) -> BaseException | None:
    """The exception behind ``error`` when it stands for a bug or an outage (not an ApiError
    raised on purpose, nor an HTTP error): what ``http_exceptions_total`` counts."""
    cause = error.__cause__
    if cause is None or isinstance(cause, (ApiError, HTTPException)):
        return None
    return cause if isinstance(error, (InternalError, DependencyUnavailable)) else None


def _http_error(error: HTTPException) -> ApiError:
    status = error.code or 500
    if status >= 500:
        logger.error("http error", extra={"status": status, "error": type(error).__name__})
    detail = error.description if status < 500 else UNEXPECTED
    headers = {}
    valid_methods = getattr(error, "valid_methods", None)
    if status == 405 and valid_methods:
        headers["Allow"] = ", ".join(sorted(valid_methods))
    return HttpError(
        status,
        error.name,
        detail or error.name,
        code=HTTP_CODES.get(status, "HTTP_ERROR"),
        headers=headers,
    )


def problem_type(code: str) -> str:
    return f"urn:python-base-04:problem:{code}"


def problem_document(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    request_id: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``{"type", "title", "status", "detail", "code", "request_id"}`` plus ``extra``."""
    body: dict[str, Any] = {
        "type": problem_type(code),
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": request_id,
    }
    body.update(extra or {})
    return body


def request_id_of(incoming: str | None) -> str:
    """The request id: the client's ``X-Request-ID`` when well-formed, else a new one."""
    if incoming and _VALID_REQUEST_ID.fullmatch(incoming):
        return incoming
    return new_request_id()


#: Generated ids drawn from one read of the OS's random source: 32 hex digits each.
_ID_BATCH = 256
_ids: Iterator[str] = iter(())


def new_request_id() -> str:
    """32 hex digits from the OS's random source (as ``secrets.token_hex(16)``), read 256 ids
    at a time: one ``getrandom`` call per request cost more than the rest of the id's work.
    Taking one is a list iterator's ``next``, atomic under the GIL; a process forked from
    this one starts with a batch of its own."""
    global _ids
    request_id = next(_ids, None)
    if request_id is None:
        raw = os.urandom(16 * _ID_BATCH).hex()
        batch = [raw[i : i + 32] for i in range(0, len(raw), 32)]
        request_id, _ids = batch[0], iter(batch[1:])
    return request_id


def _forget_ids() -> None:
    global _ids
    _ids = iter(())


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forget_ids)


def problem_json(error: ApiError, request_id: str | None = None) -> bytes:
    """The encoded problem document of ``error`` (its ``extra`` fields included)."""
    document = problem_document(
        error.status,
        error.code,
        error.title,
        error.detail,
        request_id=request_id,
        extra=error.extra,
    )
    return json.dumps(document).encode()


def wsgi_problem(
    start_response: StartResponse,
    error: ApiError,
    *,
    request_id: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
) -> list[bytes]:
    """Answer a WSGI request with ``error``'s problem document, its headers and ``headers``
    (and ``X-Request-ID`` when there is one): for doors in front of Flask."""
    body = problem_json(error, request_id)
    response_headers = [
        ("Content-Type", PROBLEM_JSON),
        ("Content-Length", str(len(body))),
        *error.headers.items(),
        *headers,
    ]
    if request_id is not None:
        response_headers.append((REQUEST_ID_HEADER, request_id))
    start_response(f"{error.status} {error.title}", response_headers)
    return [body]
