"""HTTP routes of the users module: the "Users" table of docs/auth.md."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from core.app_manager import get_app_manager
from core.errors import ApiError, Unauthorized
from core.http.auth import current_principal
from core.http.rate_limiter import rate_limit
from core.http.typed import typed
from modules.auth.schemas import (
    Credentials,
    LoginAnswer,
    Logout,
    Refresh,
    Registration,
    TokenPair,
    UserAnswer,
)
from modules.auth.service import AuthService
from modules.auth.settings import AuthSettings
from modules.auth.users import public

bp = Blueprint("auth", __name__)
_TOKEN_PROBLEMS = ["TOKEN_INVALID", "TOKEN_EXPIRED", "TOKEN_REVOKED"]


def service() -> AuthService:
    return get_app_manager().services.get("auth", AuthService)


#: Security events of refused logins and refreshes, by problem code.
_REFUSALS = {
    "INVALID_CREDENTIALS": ("login.failed", "failed"),
    "LOGIN_LOCKED": ("login.locked", "denied"),
    "REFRESH_TOKEN_REUSED": ("refresh.reused", "denied"),
}


def _refused(exc: ApiError, user_id: str | None = None, **details: str) -> None:
    if exc.code in _REFUSALS:
        event, outcome = _REFUSALS[exc.code]
        get_app_manager().security.record(
            event,
            outcome,
            status=exc.status,
            principal_type="user",
            principal_id=user_id,
            **details,
        )


@bp.post("/public/register")
@rate_limit(ip=lambda loaded: loaded.settings_of(AuthSettings).rate_limit_register)
@typed(
    body=Registration,
    response=UserAnswer,
    status=201,
    errors={409: ["EMAIL_TAKEN", "USERNAME_TAKEN"]},
)
def register(body: Registration) -> dict[str, Any]:
    """Create an account (role ``user``)."""
    return {"user": public(service().register(body))}


@bp.post("/public/login")
@rate_limit(ip=lambda loaded: loaded.settings_of(AuthSettings).rate_limit_login)
@typed(
    body=Credentials,
    response=LoginAnswer,
    errors={401: ["INVALID_CREDENTIALS"], 429: ["LOGIN_LOCKED", "RATE_LIMITED", "BANNED"]},
)
def login(body: Credentials) -> dict[str, Any]:
    """Exchange email and password for a token pair and a device token."""
    manager = get_app_manager()
    # Per-IP failures are keyed like the ip level: an IPv6 client by its /64.
    client = manager.rate_limiter.ip_identifier(request.remote_addr)
    try:
        answer, trusted = service().login(body, client)
    except ApiError as exc:  # the email as its keyed digest: a typo'd password is never stored
        digest = manager.security.digest(body.email.strip().lower())
        _refused(exc, email_digest=digest, device="presented" if body.device_token else "none")
        raise
    manager.security.record(
        "login.ok",
        principal_type="user",
        principal_id=answer["user"]["id"],
        device="trusted" if trusted else "untrusted",
    )
    return answer


@bp.post("/public/refresh")
@rate_limit(ip=lambda loaded: loaded.settings_of(AuthSettings).rate_limit_refresh)
@typed(
    body=Refresh,
    response=TokenPair,
    errors={401: [*_TOKEN_PROBLEMS, "REFRESH_TOKEN_REUSED"]},
)
def refresh(body: Refresh) -> dict[str, Any]:
    """A new token pair for a refresh token, which stops working (rotation)."""
    try:
        return service().refresh(body.refresh_token)
    except ApiError as exc:
        if exc.code == "REFRESH_TOKEN_REUSED":  # likely theft: whose login was revoked
            claims = get_app_manager().jwt.decode(body.refresh_token, "refresh")
            _refused(exc, claims["sub"], family=claims["fam"])
        raise


@bp.post("/userauth/logout")
@typed(body=Logout, errors={401: ["AUTH_REQUIRED", *_TOKEN_PROBLEMS]})
def logout(body: Logout) -> None:
    """Revoke the whole login of the access token (and of the refresh token, if given)."""
    service().logout(dict(current_principal().claims), body.refresh_token)
    get_app_manager().security.record("logout")


@bp.get("/userauth/me")
@typed(response=UserAnswer, errors={401: ["AUTH_REQUIRED", *_TOKEN_PROBLEMS]})
def me() -> dict[str, Any]:
    """The caller's account."""
    user = service().users.by_id(current_principal().id)
    if user is None:  # deleted since the token was issued
        raise Unauthorized("The token is invalid.", code="TOKEN_INVALID")
    return {"user": public(user)}
