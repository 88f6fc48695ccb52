"""RFC 9457 problem responses: every error response of the app is rendered here, once.

``{"type", "title", "status", "detail", "code", "request_id"}`` plus ``errors`` for validation
failures, as ``application/problem+json``. No HTML error pages and no stack traces: the error
path of the HTTP stack (:mod:`core.http.stack`) maps any exception with
:func:`core.edge.problems.api_error` and answers with :func:`problem_response`.
"""

from __future__ import annotations

from flask import Response, g

from core.edge.problems import PROBLEM_JSON, problem_json
from core.errors import ApiError


def problem_response(error: ApiError) -> Response:
    """The problem document of ``error`` with its status and headers."""
    request_id = g.get("request_id") if g else None
    body = problem_json(error, request_id)
    response = Response(body, status=error.status, mimetype=PROBLEM_JSON)
    response.headers.update(error.headers)
    return response
