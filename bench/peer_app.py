"""The peer: what a Flask user would assemble instead of the framework, for case (c).

The same route as the framework's ``GET /userauth/bench/ping`` with off-the-shelf extensions:

- flask-jwt-extended: a bearer access token (HS256), with a Redis blocklist checked on every
  request (``token_in_blocklist_loader``: one ``EXISTS``), as its documentation recommends
  for revocation;
- Flask-Limiter with Redis storage: an ``ip`` limit and a per-token (user) limit, each with
  the benchmark's two windows (``harness.NO_LIMITS``), default strategy (fixed window, its
  cheapest) and rate-limit headers on (the framework sends them too);
- prometheus-flask-exporter: a request-duration histogram and counter per endpoint and
  status, as the framework's metrics.

Served by gunicorn with the same ``gunicorn.conf.py`` as the bare app and the framework.
Settings from the environment: ``PEER_REDIS_URL``, ``PEER_JWT_SECRET``, ``PEER_LIMITS``.
``POST /login`` hands out a token for the benchmark's setup (no password: it is never timed).
Bench-only requirements: ``bench/requirements.txt``.
"""

from __future__ import annotations

import os

import redis
from flask import Flask, jsonify
from flask.typing import ResponseReturnValue
from flask_jwt_extended import (
    JWTManager,
    create_access_token,
    get_jwt_identity,
    jwt_required,
)
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from prometheus_flask_exporter import PrometheusMetrics

REDIS_URL = os.environ.get("PEER_REDIS_URL", "redis://127.0.0.1:6379/0")
LIMITS = os.environ.get("PEER_LIMITS", "1000000/second;60000000/minute")

app = Flask(__name__)
app.config["JWT_SECRET_KEY"] = os.environ.get("PEER_JWT_SECRET", "peer-secret-" + "x" * 32)
jwt = JWTManager(app)
blocklist = redis.Redis.from_url(REDIS_URL)
limiter = Limiter(
    get_remote_address,
    app=app,
    storage_uri=REDIS_URL,
    headers_enabled=True,
    key_prefix="peer",
)
metrics = PrometheusMetrics(app)


@jwt.token_in_blocklist_loader
def revoked(jwt_header: dict[str, object], jwt_payload: dict[str, object]) -> bool:
    return bool(blocklist.exists(f"peer:blocklist:{jwt_payload['jti']}"))


@app.post("/login")
@limiter.exempt
def login() -> ResponseReturnValue:
    return jsonify(access_token=create_access_token(identity="bench-user"))


@app.get("/ping")
@jwt_required()
@limiter.limit(LIMITS)  # per ip (the limiter's key_func)
@limiter.limit(LIMITS, key_func=lambda: f"user:{get_jwt_identity()}")
def ping() -> ResponseReturnValue:
    return jsonify(status="ok")
