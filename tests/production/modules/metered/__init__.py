"""Routes with URL variables, a failing view and a PostgreSQL wait, for the production tests."""

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


class Module(BaseModule):
    blueprint = bp
