"""Route auth policies: nothing is public by accident.

The path prefix decides (``/public/`` none, ``/userauth/`` JWT, ``/keyauth/`` API key). A route
outside those prefixes must declare its policy with :func:`declare_auth`; the app refuses to
start and lists every route that does not. Policies are resolved once at start-up into an
``endpoint -> policy`` table, so the request path does a single dict lookup.

Each policy is enforced by an *authenticator* registered with the AppManager
(``app_manager.authenticators[policy]``). Until the identity layer registers the JWT and
API-key authenticators, those policies refuse every request (deny by default).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, request

from core.errors import StartupError, Unauthorized

PUBLIC = "public"
JWT = "jwt"
API_KEY = "api_key"
JWT_OR_API_KEY = "jwt_or_api_key"
#: Operator endpoints (/metrics, /modules/status): bearer ``METRICS_TOKEN`` when it is set.
OPERATOR = "operator"
POLICIES = frozenset({PUBLIC, JWT, API_KEY, JWT_OR_API_KEY, OPERATOR})

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


def deny(policy: str) -> Authenticator:
    def authenticate() -> None:
        raise Unauthorized(f"{policy} authentication is not available", code="AUTH_REQUIRED")

    return authenticate


def operator_token(token: str | None) -> Authenticator:
    """Bearer check against ``METRICS_TOKEN``, in constant time; open when no token is set."""
    expected = token.encode() if token else None

    def authenticate() -> None:
        if expected is None:
            return
        header = request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented.encode(), expected):
            raise Unauthorized("A valid bearer token is required.", code="AUTH_REQUIRED")

    return authenticate
