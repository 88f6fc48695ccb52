"""Routes that do no I/O of their own, so a benchmark measures the request pipeline alone.

Each returns the same JSON as ``bench/bare_app.py``; the prefix decides the auth policy:
``/public/`` none (the ``ip`` limit still applies; ``/public/bench/exempt`` is exempt from
rate limits, so it makes no Redis call at all), ``/userauth/`` JWT (``ip`` + ``user``
limits, revocation marks), ``/keyauth/`` API key (``ip`` + ``api_key`` limits, revocation
marker). Everything the pipeline does (request id, auth, the one Redis round trip, metrics,
security headers) happens as for any other route.
"""

from __future__ import annotations

from flask import jsonify
from flask.typing import ResponseReturnValue

from core.http.routes import Routes
from core.module import BaseModule

bp = Routes("benchmark", __name__)
JSON = "application/json"


@bp.get("/public/bench/ping", media_type=JSON)
def public_ping() -> ResponseReturnValue:
    return jsonify(status="ok")


@bp.get("/public/bench/exempt", media_type=JSON, rate_limit_exempt=True)
def exempt_ping() -> ResponseReturnValue:
    """No auth and no rate limit: the pipeline without its Redis round trip."""
    return jsonify(status="ok")


@bp.get("/userauth/bench/ping", media_type=JSON)
def user_ping() -> ResponseReturnValue:
    return jsonify(status="ok")


@bp.get("/keyauth/bench/ping", media_type=JSON)
def key_ping() -> ResponseReturnValue:
    return jsonify(status="ok")


class BenchmarkModule(BaseModule):
    blueprint = bp
