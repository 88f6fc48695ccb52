"""Routes with URL variables, a failing view, a PostgreSQL wait and a held loop, for the
production tests."""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from core.app_manager import get_app_manager
from core.module import BaseModule

bp = Blueprint("metered", __name__)


@bp.get("/public/metered/items/<item_id>")
def item(item_id: str) -> ResponseReturnValue:
    return jsonify(id=item_id)


@bp.get("/public/metered/broken/<item_id>")
def broken(item_id: str) -> ResponseReturnValue:
    raise LookupError(f"no item {item_id}")


@bp.get("/public/metered/pg-sleep")
def pg_sleep() -> ResponseReturnValue:
    """Waits on PostgreSQL: concurrent calls overlap only when psycopg2 yields (gevent)."""
    seconds = float(request.args.get("seconds", "1"))
    get_app_manager().database.postgres.execute("SELECT pg_sleep(%s)", (seconds,))
    return jsonify(slept=seconds)


@bp.get("/public/metered/hold-loop")
def hold_loop() -> ResponseReturnValue:
    """Holds the worker's loop (a sleep that does not yield under gevent): a stalled loop."""
    from gevent.monkey import get_original

    seconds = float(request.args.get("seconds", "1"))
    get_original("time", "sleep")(seconds)
    return jsonify(held=seconds)


class Module(BaseModule):
    blueprint = bp
