"""The request pipeline (hot path), as Flask request hooks.

before: request id -> gates (maintenance) -> authentication (CPU only) -> rate limiter (ONE
Redis round trip: revocation marks, bans, every limit of every level) -> JSON body check.
after: ``X-Request-ID``, security headers, ``Cache-Control``, the rate-limit headers; each
added unless the view set it, in one pass over the response's headers.

The client IP comes from Werkzeug's ProxyFix, applied only for ``TRUSTED_PROXIES`` hops (see
:func:`core.app_manager.AppManager.wrap_wsgi`): a spoofed ``X-Forwarded-For`` from an
untrusted peer changes nothing.
"""

from __future__ import annotations

import json
import math
import re
import secrets
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, g, request

from core.errors import InvalidJson, Unauthorized, UnsupportedMediaType, ValidationFailed
from core.http import rate_limiter

if TYPE_CHECKING:
    from core.app_manager import AppManager

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_SURROGATE = re.compile("[\ud800-\udfff]")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Cross-Origin-Opener-Policy": "same-origin",
}
HSTS = "max-age=31536000; includeSubDomains"
#: What every response gets unless the view set it: (name, value), built once.
_DEFAULT_HEADERS = (*_SECURITY_HEADERS.items(), ("Cache-Control", "no-store"))
_SECURE_DEFAULT_HEADERS = (*_DEFAULT_HEADERS, ("Strict-Transport-Security", HSTS))


def json_body() -> dict[str, Any]:
    """The request's JSON object, parsed once by the pipeline; ``{}`` when there was no body."""
    body: dict[str, Any] | None = g.get("json_body")
    return {} if body is None else body


def _request_id() -> str:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    if _VALID_REQUEST_ID.fullmatch(incoming):
        return incoming
    return secrets.token_hex(16)


MAX_DEPTH = 64


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_float(text: str) -> float | int:
    """Finite numbers only; an integral one (``2.0``, ``2e0``) becomes the int it equals, so
    a handler never gets a float where the schema says ``integer``."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("numbers must be finite")
    if value.is_integer() and abs(value) <= 2**53:
        return int(value)
    return value


def check_json_value(value: Any) -> None:
    """Refuse what parses but cannot be stored or sent back: nesting deeper than
    ``MAX_DEPTH``, strings with lone surrogates (``"\\ud800"``), non-finite floats."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValidationFailed(
                [{"field": "", "message": f"nesting deeper than {MAX_DEPTH} levels"}]
            )
        if isinstance(item, dict):
            for key, child in item.items():
                _check_text(key)
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            _check_text(item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValidationFailed([{"field": "", "message": "numbers must be finite"}])


def _check_text(text: Any) -> None:
    if isinstance(text, str) and _SURROGATE.search(text):
        raise ValidationFailed([{"field": "", "message": "text must be valid Unicode"}])


def load_json(data: bytes) -> Any:
    """Strict JSON: no NaN/Infinity, finite numbers, valid Unicode, bounded nesting."""
    try:
        value = json.loads(data, parse_constant=_reject_constant, parse_float=_parse_float)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidJson("The body is not valid JSON.") from None
    check_json_value(value)
    return value


def _parse_body() -> None:
    """Reject bodies that are not a JSON object; Flask answers 413 past MAX_CONTENT_LENGTH."""
    g.json_body = None
    if request.method not in _BODY_METHODS:
        return
    data = request.get_data(cache=True)
    if not data:
        if request.is_json:  # an empty document is not JSON; no content type means no body
            raise InvalidJson("The body is empty: send a JSON object ({} for no fields).")
        return
    if not request.is_json:
        raise UnsupportedMediaType("Send the body as application/json.")
    body = load_json(data)
    if not isinstance(body, dict):
        raise ValidationFailed(
            [{"field": "", "message": "must be a JSON object"}],
            detail="The body must be a JSON object.",
        )
    g.json_body = body


def install(app: Flask, app_manager: AppManager) -> None:
    """Register the pipeline hooks on ``app``."""
    authenticators = app_manager.authenticators
    gates = app_manager.request_gates

    @app.before_request
    def before() -> None:
        g.request_id = _request_id()
        endpoint = request.endpoint
        policy = app_manager.route_policies.get(endpoint or "")
        try:
            for gate in gates:  # maintenance, then per-action auth
                gate(endpoint)
            # CORS preflights carry no credentials by design; they reach no view.
            if policy is not None and request.method != "OPTIONS":
                authenticators[policy]()
        except Unauthorized:
            rate_limiter.enforce(app_manager, endpoint)  # bad credentials still count per IP
            raise
        rate_limiter.enforce(app_manager, endpoint)
        _parse_body()

    @app.after_request
    def after(response: Response) -> Response:
        headers = response.headers
        present = {name.lower() for name in headers.keys()}  # noqa: SIM118 - Headers, not dict
        request_id = g.get("request_id") or _request_id()
        if "x-request-id" in present:
            headers[REQUEST_ID_HEADER] = request_id
        else:
            headers.add(REQUEST_ID_HEADER, request_id)
        defaults = _SECURE_DEFAULT_HEADERS if request.is_secure else _DEFAULT_HEADERS
        for name, value in (*defaults, *rate_limiter.header_items()):
            if name.lower() not in present:
                headers.add(name, value)
        return response
