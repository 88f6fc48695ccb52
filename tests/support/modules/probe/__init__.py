"""A test module with routes that exercise the framework: echo, crash, slow, log."""

from __future__ import annotations

import logging
import time

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from core.http.pipeline import json_body
from core.module import BaseModule

logger = logging.getLogger(__name__)
bp = Blueprint("probe", __name__)


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


@bp.get("/keyauth/probe/private")
def key_private() -> ResponseReturnValue:
    return jsonify(secret="only for authenticated callers")


class ProbeModule(BaseModule):
    blueprint = bp
