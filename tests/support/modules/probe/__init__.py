"""A test module with routes that exercise the framework: echo, crash, slow, log."""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Flask, jsonify, request
from flask.typing import ResponseReturnValue

from core.app_manager import get_app_manager
from core.http.auth import current_principal
from core.http.pipeline import json_body
from core.http.routes import Routes
from core.module import BaseModule, ModuleHost

logger = logging.getLogger(__name__)
#: Plain Flask routes: their path prefix decides their auth, nothing else is declared.
bp = Blueprint("probe", __name__)
#: Routes with facts of their own (limits).
declared = Routes("probe_declared", __name__)


@bp.post("/public/probe/echo")
def echo() -> ResponseReturnValue:
    return jsonify(received=json_body())


@bp.get("/public/probe/boom")
def boom() -> ResponseReturnValue:
    secret = request.args.get("secret", "")
    raise RuntimeError(f"exploded with {secret}")


@bp.get("/public/probe/slow")
def slow() -> ResponseReturnValue:
    seconds = float(request.args.get("seconds", "1"))
    time.sleep(seconds)
    return jsonify(slept=seconds)


@bp.post("/public/probe/log")
def log() -> ResponseReturnValue:
    body = json_body()
    logger.warning(
        "probe says %s", body.get("message", ""), extra={"fields": body.get("fields", {})}
    )
    return jsonify(logged=True)


@bp.get("/userauth/probe/private")
def user_private() -> ResponseReturnValue:
    return jsonify(secret="only for authenticated callers")


@bp.post("/userauth/probe/promote-myself")
def promote_myself() -> ResponseReturnValue:
    """What careless (or hostile) view code might do to the verified claims it was given."""
    claims = current_principal().claims
    attempts = {}
    for name, attempt in (
        ("replace", lambda: claims.__setitem__("roles", ["admin", "user"])),  # type: ignore[attr-defined]
        ("append", lambda: claims["roles"].append("admin")),
    ):
        try:
            attempt()
            attempts[name] = "changed"
        except (TypeError, AttributeError):
            attempts[name] = "refused"
    return jsonify(attempts)


@bp.get("/keyauth/probe/private")
def key_private() -> ResponseReturnValue:
    return jsonify(secret="only for authenticated callers")


@declared.get("/public/probe/limited", limits={"ip": "2/minute"}, media_type="application/json")
def limited() -> ResponseReturnValue:
    return jsonify(limited=True)


@declared.get("/public/probe/unlimited", rate_limit_exempt=True, media_type="application/json")
def unlimited() -> ResponseReturnValue:
    return jsonify(limited=False)


@bp.get("/public/probe/ip")
def client_ip() -> ResponseReturnValue:
    return jsonify(ip=request.remote_addr, scheme=request.scheme)


@bp.get("/public/probe/own-headers")
def own_headers() -> ResponseReturnValue:
    """Sets, in lower case, headers the pipeline otherwise adds: the view's must win."""
    response = jsonify(own=True)
    response.headers["cache-control"] = "max-age=60"
    response.headers["x-frame-options"] = "SAMEORIGIN"
    response.headers["x-ratelimit-limit"] = "7"
    return response


@bp.post("/public/probe/docs")
def insert_doc() -> ResponseReturnValue:
    """Writes to MongoDB, for outage tests."""
    store = get_app_manager().database.mongo
    result = store.collection("probe_docs").insert_one(dict(json_body()))
    return jsonify(id=str(result.inserted_id)), 201


@bp.get("/public/probe/docs")
def count_docs() -> ResponseReturnValue:
    store = get_app_manager().database.mongo
    return jsonify(count=store.collection("probe_docs").count_documents({}))


@bp.get("/public/probe/sql")
def sql_now() -> ResponseReturnValue:
    """Reads from PostgreSQL, for outage tests."""
    rows = get_app_manager().database.postgres.execute("SELECT 1 AS one")
    return jsonify(rows=rows)


class ProbeModule(BaseModule):
    blueprint = bp

    def register_routes(self, app: Flask) -> None:
        super().register_routes(app)
        app.register_blueprint(declared)

    def __init__(self, name: str, app_manager: ModuleHost) -> None:
        super().__init__(name, app_manager)
        self.events: list[str] = []
        app_manager.hooks.register("app.started", lambda **_: self.events.append("started"))
        app_manager.hooks.register("app.stopping", lambda **_: self.events.append("stopping"))
