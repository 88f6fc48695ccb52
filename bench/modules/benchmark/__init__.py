"""Routes that do no I/O of their own, so a benchmark measures the request pipeline alone.

Each returns the same JSON as ``bench/bare_app.py``; the prefix decides the auth policy:
``/public/`` none (the ``ip`` limit still applies; ``/public/bench/exempt`` is exempt from
rate limits, so it makes no Redis call at all), ``/userauth/`` JWT (``ip`` + ``user``
limits, revocation marks), ``/keyauth/`` API key (``ip`` + ``api_key`` limits, revocation
marker). Everything the pipeline does (request id, auth, the one Redis round trip, metrics,
security headers) happens as for any other route.
"""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from core.http.rate_limiter import exempt
from core.module import BaseModule

bp = Blueprint("benchmark", __name__)


@bp.get("/public/bench/ping")
def public_ping() -> ResponseReturnValue:
    return jsonify(status="ok")


@bp.get("/public/bench/exempt")
@exempt
def exempt_ping() -> ResponseReturnValue:
    """No auth and no rate limit: the pipeline without its Redis round trip."""
    return jsonify(status="ok")


@bp.get("/userauth/bench/ping")
def user_ping() -> ResponseReturnValue:
    return jsonify(status="ok")


@bp.get("/keyauth/bench/ping")
def key_ping() -> ResponseReturnValue:
    return jsonify(status="ok")


class BenchmarkModule(BaseModule):
    blueprint = bp
