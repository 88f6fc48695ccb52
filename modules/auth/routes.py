"""HTTP routes of the users module: the "Users" table of docs/auth.md."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from flask.typing import ResponseReturnValue

from core.app_manager import get_app_manager
from core.errors import Unauthorized
from core.http.auth import current_principal
from core.http.pipeline import json_body
from core.http.rate_limiter import rate_limit
from modules.auth.service import AuthService
from modules.auth.users import public

bp = Blueprint("auth", __name__)


def service() -> AuthService:
    return get_app_manager().services.get("auth", AuthService)


@bp.post("/public/register")
@rate_limit(ip=lambda settings: settings.rate_limit_register)
def register() -> ResponseReturnValue:
    user = service().register(json_body())
    return jsonify(user=public(user)), 201


@bp.post("/public/login")
@rate_limit(ip=lambda settings: settings.rate_limit_login)
def login() -> ResponseReturnValue:
    return jsonify(service().login(json_body(), request.remote_addr or "unknown"))


@bp.post("/public/refresh")
@rate_limit(ip=lambda settings: settings.rate_limit_refresh)
def refresh() -> ResponseReturnValue:
    return jsonify(service().refresh(json_body()))


@bp.post("/userauth/logout")
def logout() -> ResponseReturnValue:
    service().logout(dict(current_principal().claims), json_body())
    return Response(status=204)


@bp.get("/userauth/me")
def me() -> ResponseReturnValue:
    user = service().users.by_id(current_principal().id)
    if user is None:  # deleted since the token was issued
        raise Unauthorized("The token is invalid.", code="TOKEN_INVALID")
    return jsonify(user=public(user))
