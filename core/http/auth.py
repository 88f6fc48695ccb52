"""Route auth policies: nothing is public by accident.

The path prefix decides (``/public/`` none, ``/userauth/`` JWT, ``/keyauth/`` API key). A route
outside those prefixes must declare its policy with :func:`declare_auth`; the app refuses to
start and lists every route that does not. Policies are resolved once at start-up into an
``endpoint -> policy`` table, so the request path does a single dict lookup.

Each policy is enforced by an *authenticator* (``Routing.authenticators[policy]``, see
:mod:`core.http.routing`); an authenticator raises 401 or stores the caller as
``g.principal`` (:func:`current_principal`). Views add role and scope checks with
:func:`require_roles` and :func:`require_scopes`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar, cast

from flask import Flask, g, request

from core.edge.bearer import bearer_matches
from core.edge.principal import (
    API_KEY,
    JWT,
    JWT_OR_API_KEY,
    OPERATOR,
    POLICIES,
    PUBLIC,
    Principal,
    refusal,
)
from core.errors import ApiError, StartupError, Unauthorized
from core.managers.rate_limiter import Revocation

#: What module code imports from here: the policies and Principal come from :mod:`core.edge`.
__all__ = [
    "API_KEY",
    "JWT",
    "JWT_OR_API_KEY",
    "OPERATOR",
    "POLICIES",
    "PUBLIC",
    "Principal",
    "current_principal",
    "declare_auth",
    "require_roles",
    "require_scopes",
]

PREFIX_POLICIES = {"/public/": PUBLIC, "/userauth/": JWT, "/keyauth/": API_KEY}

Authenticator = Callable[[], None]
F = TypeVar("F", bound=Callable[..., Any])


def declare_auth(policy: str) -> Callable[[F], F]:
    """Declare the auth policy of a view outside the three prefixes."""
    if policy not in POLICIES:
        raise ValueError(f"unknown auth policy {policy!r}; use one of {sorted(POLICIES)}")

    def decorator(view: F) -> F:
        view.auth_policy = policy  # type: ignore[attr-defined]
        return view

    return decorator


def prefix_policy(path: str) -> str | None:
    for prefix, policy in PREFIX_POLICIES.items():
        if path.startswith(prefix):
            return policy
    return None


def resolve_policies(app: Flask) -> dict[str, str]:
    """``endpoint -> policy`` for every route; raises listing routes without a policy."""
    policies: dict[str, str] = {}
    problems: list[str] = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions.get(rule.endpoint)
        declared = getattr(view, "auth_policy", None)
        by_prefix = prefix_policy(rule.rule)
        if by_prefix and declared and declared != by_prefix:
            problems.append(f"{rule.rule} declares {declared!r} but its prefix means {by_prefix!r}")
        policy = by_prefix or declared
        if policy is None:
            problems.append(f"{rule.rule} (endpoint {rule.endpoint}) declares no auth policy")
            continue
        if policies.setdefault(rule.endpoint, policy) != policy:
            problems.append(f"endpoint {rule.endpoint} is reachable under two auth policies")
    if problems:
        raise StartupError(
            "routes without a valid auth policy (use a /public/, /userauth/ or /keyauth/ prefix "
            "or core.http.auth.declare_auth):\n" + "\n".join(f"  - {p}" for p in problems)
        )
    return policies


def operator_token(token: str | None, *, open_without_token: bool = True) -> Authenticator:
    """Bearer check against ``METRICS_TOKEN``, in constant time. Without a token the operator
    routes are open only when ``open_without_token`` (development on the app's port);
    otherwise the app's port, which the ingress exposes, serves them to nobody."""
    expected = token.encode() if token else None
    closed = expected is None and not open_without_token

    def authenticate() -> None:
        if closed or not bearer_matches(request.headers.get("Authorization", ""), expected):
            raise Unauthorized("A valid bearer token is required.", code="AUTH_REQUIRED")

    return authenticate


# -- principals ---------------------------------------------------------------------------


def current_principal() -> Principal:
    """The authenticated caller of this request; 401 when there is none."""
    principal: Principal | None = g.get("principal")
    if principal is None:
        raise Unauthorized("Authentication is required.", code="AUTH_REQUIRED")
    return principal


def require_roles(*roles: str) -> Callable[[F], F]:
    """403 ``FORBIDDEN`` unless the caller is a user with every one of ``roles``."""
    return _guard(JWT, roles=frozenset(roles))


def require_scopes(*scopes: str) -> Callable[[F], F]:
    """403 ``INSUFFICIENT_SCOPE`` unless an API-key caller has every one of ``scopes``.

    Users (JWT) are not limited by scopes; their roles govern them.
    """
    return _guard(JWT_OR_API_KEY, scopes=frozenset(scopes))


def _guard(
    auth: str, roles: frozenset[str] = frozenset(), scopes: frozenset[str] = frozenset()
) -> Callable[[F], F]:
    """Wrap a view with :func:`core.edge.principal.refusal` for the current caller."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            refused = refusal(current_principal(), auth, roles, scopes)
            if refused is not None:
                raise refused
            return view(*args, **kwargs)

        # Read by OpenAPI (403 answers); functools.wraps kept those of a guard below this one.
        if roles:
            wrapper.required_roles = roles  # type: ignore[attr-defined]
        if scopes:
            wrapper.required_scopes = scopes  # type: ignore[attr-defined]
        return cast(F, wrapper)

    return decorator


# -- authenticators -------------------------------------------------------------------------


class TokenVerifier(Protocol):
    def decode(self, token: str, expected_type: str = ...) -> Mapping[str, Any]: ...
    def revocation_keys(self, claims: Mapping[str, Any]) -> list[str]: ...


class KeyVerifier(Protocol):
    def verify(self, presented: str, *, check_revoked: bool = ...) -> Any: ...
    def revoked_key(self, prefix: str) -> str: ...


def _token_revoked() -> ApiError:
    return Unauthorized("The token has been revoked.", code="TOKEN_REVOKED")


def _key_revoked() -> ApiError:
    return Unauthorized("The API key is invalid.", code="API_KEY_INVALID")


def bearer_token() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def jwt_authenticator(tokens: TokenVerifier) -> Authenticator:
    def authenticate() -> None:
        token = bearer_token()
        if token is None:
            raise Unauthorized("A bearer access token is required.", code="AUTH_REQUIRED")
        # Signature and claims here (CPU only); the revocation marks are checked by the rate
        # limiter in the request's single Redis round trip.
        claims = tokens.decode(token)
        g.revocations = [Revocation(key, _token_revoked) for key in tokens.revocation_keys(claims)]
        g.principal = Principal(
            "user",
            claims["sub"],
            str(claims.get("username", "")),
            roles=frozenset(claims.get("roles", ())),
            claims=claims,
        )

    return authenticate


def api_key_authenticator(
    keys: KeyVerifier, on_invalid: Callable[[str], None] = lambda code: None
) -> Authenticator:
    """``on_invalid(code)`` is told of every refused key (a security event)."""

    def revoked() -> ApiError:
        on_invalid("API_KEY_REVOKED")
        return _key_revoked()

    def authenticate() -> None:
        presented = request.headers.get("X-API-Key", "").strip()
        if not presented:
            raise Unauthorized("An X-API-Key header is required.", code="API_KEY_REQUIRED")
        try:
            key = keys.verify(presented, check_revoked=False)
        except Unauthorized as exc:
            on_invalid(exc.code)
            raise
        g.revocations = [Revocation(keys.revoked_key(key.prefix), revoked)]
        g.principal = Principal(
            "api_key", key.id, key.name, scopes=frozenset(key.scopes), claims={}
        )

    return authenticate


def either_authenticator(user: Authenticator, service: Authenticator) -> Authenticator:
    """JWT when a Bearer token is sent, else API key, else 401 ``AUTH_REQUIRED``."""

    def authenticate() -> None:
        if request.headers.get("Authorization", "").lower().startswith("bearer "):
            user()
        elif "X-API-Key" in request.headers:
            service()
        else:
            raise Unauthorized("A bearer token or an API key is required.", code="AUTH_REQUIRED")

    return authenticate
