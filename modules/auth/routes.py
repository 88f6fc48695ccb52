"""HTTP routes of the users module: the "Users" table of docs/auth.md."""

from __future__ import annotations

from typing import Any

from flask import request

from core.app_manager import get_app_manager
from core.edge.endpoint import Setting
from core.errors import ApiError, Unauthorized
from core.http.auth import current_principal
from core.http.routes import Routes
from core.http.typed import Paged, PageQuery
from modules.auth.schemas import (
    Credentials,
    EndedSessions,
    LoginAnswer,
    Logout,
    Refresh,
    Registration,
    Session,
    TokenPair,
    UserAnswer,
)
from modules.auth.service import AuthService, Client
from modules.auth.users import public

bp = Routes("auth", __name__)
_TOKEN_PROBLEMS = {"TOKEN_INVALID": 401, "TOKEN_EXPIRED": 401, "TOKEN_REVOKED": 401}
#: What a route for a signed-in user can answer about the token.
_SIGNED_IN = {"AUTH_REQUIRED": 401, **_TOKEN_PROBLEMS}


def service() -> AuthService:
    return get_app_manager().services.get("auth", AuthService)


def client() -> Client:
    """The caller, as logins and sessions see it (the trusted-proxy client IP)."""
    limit_key = get_app_manager().rate_limiter.ip_identifier(request.remote_addr)
    return Client(limit_key, request.remote_addr, request.user_agent.string or None)


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


@bp.post(
    "/public/register",
    limits={"ip": Setting("RATE_LIMIT_REGISTER")},
    body=Registration,
    response=UserAnswer,
    status=201,
    errors={"EMAIL_TAKEN": 409, "USERNAME_TAKEN": 409},
)
def register(body: Registration) -> dict[str, Any]:
    """Create an account (role ``user``)."""
    return {"user": public(service().register(body))}


@bp.post(
    "/public/login",
    limits={"ip": Setting("RATE_LIMIT_LOGIN")},
    body=Credentials,
    response=LoginAnswer,
    errors={"INVALID_CREDENTIALS": 401, "LOGIN_LOCKED": 429, "RATE_LIMITED": 429, "BANNED": 429},
)
def login(body: Credentials) -> dict[str, Any]:
    """Exchange email and password for a token pair and a device token."""
    manager = get_app_manager()
    try:  # per-IP failures are keyed like the ip level: an IPv6 client by its /64
        answer, trusted = service().login(body, client())
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


@bp.post(
    "/public/refresh",
    limits={"ip": Setting("RATE_LIMIT_REFRESH")},
    body=Refresh,
    response=TokenPair,
    errors={**_TOKEN_PROBLEMS, "REFRESH_TOKEN_REUSED": 401},
)
def refresh(body: Refresh) -> dict[str, Any]:
    """A new token pair for a refresh token, which stops working (rotation)."""
    try:
        return service().refresh(body.refresh_token, client())
    except ApiError as exc:
        if exc.code == "REFRESH_TOKEN_REUSED":  # likely theft: whose login was revoked
            claims = get_app_manager().jwt.decode(body.refresh_token, "refresh")
            _refused(exc, claims["sub"], family=claims["fam"])
        raise


@bp.post("/userauth/logout", body=Logout, errors=_SIGNED_IN)
def logout(body: Logout) -> None:
    """Revoke the whole login of the access token (and of the refresh token, if given)."""
    service().logout(dict(current_principal().claims), body.refresh_token)
    get_app_manager().security.record("logout")


@bp.get("/userauth/me", response=UserAnswer, errors=_SIGNED_IN)
def me() -> dict[str, Any]:
    """The caller's account."""
    user = service().users.by_id(current_principal().id)
    if user is None:  # deleted since the token was issued
        raise Unauthorized("The token is invalid.", code="TOKEN_INVALID")
    return {"user": public(user)}


@bp.get("/userauth/sessions", query=PageQuery, response=Paged[Session], errors=_SIGNED_IN)
def list_sessions(query: PageQuery) -> dict[str, Any]:
    """The caller's sessions (logins), newest first, a page at a time."""
    claims = current_principal().claims
    return service().list_sessions(claims, query.limit, query.cursor).to_dict()


@bp.delete("/userauth/sessions/<session_id>", errors={**_SIGNED_IN, "NOT_FOUND": 404})
def end_session(session_id: str) -> None:
    """End one of the caller's sessions: its tokens stop working and its sockets are closed,
    on every instance."""
    claims = current_principal().claims
    family = service().end_session(claims, session_id)
    current = "true" if family == claims["fam"] else "false"
    get_app_manager().security.record("session.revoked", session_id=session_id, current=current)


@bp.post("/userauth/sessions/revoke-others", response=EndedSessions, errors=_SIGNED_IN)
def end_other_sessions() -> dict[str, Any]:
    """End every session of the caller but the current one."""
    ended = service().end_other_sessions(current_principal().claims)
    security = get_app_manager().security
    for session_id in ended:
        security.record("session.revoked", session_id=session_id, current="false")
    return {"ended": len(ended)}
