"""The RFC 9457 problem document, as a pure function: the HTTP error handlers and the metrics
server's own port both answer with it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PROBLEM_JSON = "application/problem+json"


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
