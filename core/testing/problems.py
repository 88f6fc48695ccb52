"""The assertion every HTTP test of an error needs."""

from __future__ import annotations

from typing import Any


def problem(response: Any, status: int, code: str) -> dict[str, Any]:
    """Check that ``response`` is an RFC 9457 problem with ``status`` and ``code``; return it."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/problem+json"
    body: dict[str, Any] = response.get_json(force=True)
    assert body["status"] == status
    assert body["code"] == code
    assert body["title"]
    assert body["detail"]
    assert body["type"].endswith(code)
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body
