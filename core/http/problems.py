"""RFC 9457 problem documents: every error response of the app is made here, once.

``{"type", "title", "status", "detail", "code", "request_id"}`` plus ``errors`` for validation
failures, as ``application/problem+json``. No HTML error pages and no stack traces: an
unexpected exception is logged with its traceback and answered with ``INTERNAL_ERROR``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, g
from werkzeug.exceptions import HTTPException

from core.edge.problems import PROBLEM_JSON, problem_document
from core.errors import ApiError, DependencyUnavailable, InternalError

if TYPE_CHECKING:
    from core.app_manager import AppManager

logger = logging.getLogger(__name__)

# Werkzeug's HTTP errors (routing, body limits) mapped to the contract's codes.
_HTTP_CODES = {
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


def make_problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    request_id = g.get("request_id") if g else None
    body = problem_document(status, code, title, detail, request_id=request_id, extra=extra)
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    response.headers.update(headers or {})
    return response


def problem_response(error: ApiError) -> Response:
    return make_problem(
        error.status,
        error.code,
        error.title,
        error.detail,
        headers=error.headers,
        extra=error.extra,
    )


def register_error_handlers(app: Flask, app_manager: AppManager) -> None:
    """Map every exception to a problem response, in one place."""

    @app.errorhandler(ApiError)
    def handle_api_error(error: ApiError) -> Response:
        return problem_response(error)

    @app.errorhandler(HTTPException)
    def handle_http_exception(error: HTTPException) -> Response:
        status = error.code or 500
        if status >= 500:
            logger.error("http error", extra={"status": status, "error": type(error).__name__})
        detail = error.description if status < 500 else "An unexpected error occurred."
        response = make_problem(
            status, _HTTP_CODES.get(status, "HTTP_ERROR"), error.name, detail or error.name
        )
        valid_methods = getattr(error, "valid_methods", None)
        if status == 405 and valid_methods:
            response.headers["Allow"] = ", ".join(sorted(valid_methods))
        return response

    @app.errorhandler(Exception)
    def handle_exception(error: Exception) -> Response:
        dependency = app_manager.dependency_of(error)
        if dependency is not None:
            logger.warning(
                "dependency unavailable",
                extra={"dependency": dependency, "error": type(error).__name__},
            )
            return problem_response(DependencyUnavailable(dependency))
        logger.error("unhandled exception", exc_info=error)
        return problem_response(InternalError("An unexpected error occurred."))
