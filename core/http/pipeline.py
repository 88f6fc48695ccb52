"""The request pipeline (hot path), as Flask request hooks.

before: request id -> gates (maintenance) -> authentication (CPU only) -> rate limiter (ONE
Redis round trip: revocation marks, bans, every limit of every level) -> JSON body check.
after: ``X-Request-ID``, security headers, ``Cache-Control``, the rate-limit headers; each
added unless the view set it, in one pass over the response's headers.

The client IP comes from Werkzeug's ProxyFix, applied only for ``TRUSTED_PROXIES`` hops (see
:func:`core.factory.wrap_wsgi`): a spoofed ``X-Forwarded-For`` from an
untrusted peer changes nothing.
"""

from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Response, g, request

from core.edge.json import load_json
from core.errors import InvalidJson, NotFound, Unauthorized, UnsupportedMediaType, ValidationFailed
from core.http import rate_limiter

if TYPE_CHECKING:
    from core.http.routing import Routing
    from core.managers.rate_limiter import RateLimiter

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
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


def content_security_policy(blueprint: Blueprint, policy: str) -> None:
    """Send ``policy`` as the Content-Security-Policy of every response of ``blueprint``.

    The default policy (``default-src 'none'``) suits JSON; a route serving a page (Swagger UI,
    the webchat example) needs its own, for its routes only.
    """

    def set_policy(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = policy
        return response

    blueprint.after_request(set_policy)


def json_body() -> dict[str, Any]:
    """The request's JSON object, parsed once by the pipeline; ``{}`` when there was no body."""
    body: dict[str, Any] | None = g.get("json_body")
    return {} if body is None else body


def _request_id() -> str:
    # Straight from the WSGI environ: Werkzeug's header view would build its key first.
    incoming: str = request.environ.get("HTTP_X_REQUEST_ID", "")
    if _VALID_REQUEST_ID.fullmatch(incoming):
        return incoming
    return secrets.token_hex(16)


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


def install(app: Flask, limiter: RateLimiter, routing: Routing) -> None:
    """Register the pipeline hooks on ``app``."""
    authenticators = routing.authenticators
    gates = routing.request_gates

    @app.before_request
    def before() -> None:
        g.request_id = _request_id()
        endpoint = request.endpoint
        key = endpoint or ""
        policy = routing.route_policies.get(key)
        plan, resolver = routing.rate_limit_plans.get(key), routing.bucket_resolvers.get(key)
        try:
            for gate in gates:  # maintenance, then per-action auth
                gate(endpoint)
            # CORS preflights carry no credentials by design; they reach no view.
            if policy is not None and request.method != "OPTIONS":
                authenticators[policy]()
        except (Unauthorized, NotFound):
            # Bad credentials and unknown actions still count per IP: guessing is limited.
            rate_limiter.enforce(limiter, plan, resolver, endpoint)
            raise
        rate_limiter.enforce(limiter, plan, resolver, endpoint)
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
