"""Routes that do no I/O of their own, so a benchmark measures the request pipeline alone.

Each returns the same JSON as ``bench/bare_app.py``; the prefix decides the auth policy:
``/public/`` none (the ``ip`` limit still applies; ``/public/bench/exempt`` is exempt from
rate limits, so it makes no Redis call at all), ``/userauth/`` JWT (``ip`` + ``user``
limits, revocation marks), ``/keyauth/`` API key (``ip`` + ``api_key`` limits, revocation
marker). Everything the pipeline does (request id, auth, the one Redis round trip, metrics,
security headers) happens as for any other route.

``/public/bench/memory`` (exempt) tells where the worker's memory went since a mark: Python
objects by type (``gc``) and the allocations still alive (a ``tracemalloc`` snapshot);
``bench.socket_capacity --memory`` uses it to find what each socket costs.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections import Counter
from typing import Any

from flask import jsonify, request
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


_marked: dict[str, Any] = {}


def _types() -> Counter[str]:
    return Counter(_name(type(o)) for o in gc.get_objects())


def _name(kind: type) -> str:
    return f"{getattr(kind, '__module__', '?')!s}.{getattr(kind, '__qualname__', '?')!s}"


@bp.get("/public/bench/memory", media_type=JSON, rate_limit_exempt=True)
def memory() -> ResponseReturnValue:
    """``?mark=1[&trace=FRAMES]``: remember the objects by type (and start tracing
    allocations, FRAMES deep); then ``?dump=PATH``: the objects by type grown since, and the
    allocations made since the mark and still alive written to PATH (a tracemalloc
    snapshot: the caller analyses it, the worker must not spend minutes on it)."""
    gc.collect()
    types = _types()
    if request.args.get("mark"):
        frames = int(request.args.get("trace", 0))
        if frames and not tracemalloc.is_tracing():
            tracemalloc.start(frames)
        _marked["types"] = types
        return jsonify(marked=True, tracing=tracemalloc.is_tracing())
    grown = types - _marked.get("types", Counter())
    dumped = False
    path = request.args.get("dump")
    if path and tracemalloc.is_tracing():
        tracemalloc.take_snapshot().dump(path)
        tracemalloc.stop()
        dumped = True
    return jsonify(objects=grown.most_common(60), dumped=dumped)


class BenchmarkModule(BaseModule):
    blueprint = bp
