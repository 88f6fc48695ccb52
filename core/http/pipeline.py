"""The layers of the request pipeline (hot path); their order is :data:`core.http.stack.HTTP_STACK`.

- request id: the client's ``X-Request-ID`` when well-formed, else a new one; echoed back;
- CORS: the headers for ``CORS_ORIGINS`` (Flask-CORS's own evaluation, as a layer);
- headers: security headers, ``Cache-Control`` (and HSTS over HTTPS), unless the view set them;
- admission: the one admission function for the request's endpoint (:mod:`core.http.admission`);
- body: the JSON body, strict, an object, parsed once (:func:`json_body`).

The client IP comes from Werkzeug's ProxyFix, applied only for ``TRUSTED_PROXIES`` hops (see
:func:`core.factory.wrap_wsgi`): a spoofed ``X-Forwarded-For`` from an
untrusted peer changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Request, Response, g, request
from flask.ctx import _AppCtxGlobals
from flask_cors.core import get_cors_options, set_cors_headers
from werkzeug.datastructures import Headers

from core.edge.json import load_json
from core.edge.problems import REQUEST_ID_HEADER, request_id_of
from core.errors import (
    ApiError,
    InvalidJson,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)

if TYPE_CHECKING:
    from config.settings import Settings

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
#: Response headers browsers may read cross-origin.
EXPOSED_HEADERS = [
    "X-Request-ID",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "Retry-After",
]


@dataclass(frozen=True)
class Layer:
    """One layer of :data:`core.http.stack.HTTP_STACK`; every part is optional (what each
    part does and when: :mod:`core.http.stack`)."""

    name: str
    #: Returns None to go on, or a response to answer with (no view runs).
    before: Callable[[], Response | None] | None = None
    after: Callable[[Response], None] | None = None
    failed: Callable[[ApiError], None] | None = None
    finished: Callable[[], None] | None = None


def content_security_policy(blueprint: Blueprint, policy: str) -> None:
    """Send ``policy`` as the Content-Security-Policy of every response of ``blueprint``.

    The default policy (``default-src 'none'``) suits JSON; a route serving a page (Swagger UI,
    the webchat example) needs its own, for its routes only.
    """

    def set_policy(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = policy
        return response

    blueprint.after_request(set_policy)


def current() -> tuple[Request, _AppCtxGlobals]:
    """This request and its ``g`` themselves, for a layer that reads them several times:
    every read through Flask's ``request`` and ``g`` proxies looks the context up again
    (about 1 µs each on the worker, ~25 per request across the layers)."""
    return request._get_current_object(), g._get_current_object()  # type: ignore[attr-defined]


def json_body() -> dict[str, Any]:
    """The request's JSON object, parsed once by the pipeline; ``{}`` when there was no body."""
    body: dict[str, Any] | None = g.get("json_body")
    return {} if body is None else body


def _request_id() -> str:
    # Straight from the WSGI environ: Werkzeug's header view would build its key first.
    return request_id_of(request.environ.get("HTTP_X_REQUEST_ID"))


def request_id_layer() -> Layer:
    def before() -> None:
        g.request_id = _request_id()

    def after(response: Response) -> None:
        response.headers[REQUEST_ID_HEADER] = g.get("request_id") or _request_id()

    return Layer("request_id", before=before, after=after)


def cors_layer(app: Flask, settings: Settings) -> Layer | None:
    """Flask-CORS's evaluation of ``CORS_ORIGINS`` on every response (preflights included:
    Flask answers those itself); no layer when no origin is allowed."""
    if not settings.cors_origins:
        return None
    options = get_cors_options(
        app,
        {
            "origins": settings.cors_origins,
            "allow_headers": ["Authorization", "Content-Type", "X-API-Key", "X-Request-ID"],
            "expose_headers": EXPOSED_HEADERS,
            "max_age": 600,
        },
    )

    def after(response: Response) -> None:
        set_cors_headers(response, options)

    return Layer("cors", after=after)


def add_missing(headers: Headers, items: Iterable[tuple[str, str]]) -> None:
    """Append each ``(name, value)`` the response has no header of that name for (a view's
    own header wins): one pass over the headers, where a ``name in headers`` per item scans
    them each time and raises a KeyError inside Werkzeug for every miss."""
    present = {name.lower() for name in headers.keys()}  # noqa: SIM118 - Headers, not dict
    for name, value in items:
        if name.lower() not in present:
            headers.add(name, value)


def headers_layer() -> Layer:
    def after(response: Response) -> None:
        secure = request.is_secure
        add_missing(response.headers, _SECURE_DEFAULT_HEADERS if secure else _DEFAULT_HEADERS)

    return Layer("headers", after=after)


def _cut_at_the_limit(data: bytes) -> bool:
    """Whether a chunked body (no Content-Length) went on past MAX_CONTENT_LENGTH.

    Werkzeug reads such a body through a stream that stops at the maximum without an error,
    so ``data`` is the first MAX_CONTENT_LENGTH bytes of something longer: one more byte from
    the server's own (terminated) stream tells a body of exactly the maximum from a longer one.
    """
    limit = request.max_content_length
    environ = request.environ
    if limit is None or request.content_length is not None or len(data) < limit:
        return False
    return "wsgi.input_terminated" in environ and bool(environ["wsgi.input"].read(1))


def body_layer() -> Layer:
    return Layer("body", before=_parse_body)


def _parse_body() -> None:
    """Reject bodies that are not a JSON object, and bodies over MAX_CONTENT_LENGTH (413).
    A request of another method has no body: ``g.json_body`` stays unset (:func:`json_body`
    reads that as ``{}``)."""
    if request.method not in _BODY_METHODS:
        return
    g.json_body = None
    data = request.get_data(cache=True)  # 413 from Werkzeug for a Content-Length over the max
    if _cut_at_the_limit(data):
        raise PayloadTooLarge(f"The body is larger than {request.max_content_length} bytes.")
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
