"""Administration routes under ``/userauth/admin/`` (role ``admin``; exempt from maintenance)."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from core.app_manager import get_app_manager
from core.errors import ValidationFailed
from core.http import maintenance
from core.http.auth import require_roles
from core.http.pipeline import json_body
from core.module import BaseModule

bp = Blueprint("admin", __name__)
MESSAGE_MAX = 500


@bp.post("/userauth/admin/maintenance")
@require_roles("admin")
def set_maintenance() -> ResponseReturnValue:
    """Body ``{enabled, message?}``; answers ``{enabled, message}`` as seen by every instance."""
    body = json_body()
    enabled, message = body.get("enabled"), body.get("message")
    errors = []
    if not isinstance(enabled, bool):
        errors.append({"field": "/enabled", "message": "must be true or false"})
    if message is not None and (
        not isinstance(message, str) or not 0 < len(message) <= MESSAGE_MAX
    ):
        errors.append({"field": "/message", "message": f"must be 1-{MESSAGE_MAX} characters"})
    if errors:
        raise ValidationFailed(errors)
    status = maintenance.set_mode(get_app_manager().state, bool(enabled), message)
    return jsonify(status.to_dict())


class AdminModule(BaseModule):
    blueprint = bp
