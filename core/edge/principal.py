"""Who is calling (:class:`Principal`), the auth policies, and the one refusal rule.

Roles govern users (JWT) and scopes limit API keys: routes, actions and socket events all
declare them on their endpoint and admission asks :func:`refusal`, so the answer to
"may this caller do this" is written once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from core.errors import ApiError, Forbidden, Unauthorized

PUBLIC = "public"
JWT = "jwt"
API_KEY = "api_key"
JWT_OR_API_KEY = "jwt_or_api_key"
#: Operator endpoints (/metrics, /modules/status): bearer ``METRICS_TOKEN`` when it is set.
OPERATOR = "operator"
#: Anyone; a credential, when one is sent, is checked and names the caller (``GET /actions``).
OPTIONAL = "optional"
POLICIES = frozenset({PUBLIC, JWT, API_KEY, JWT_OR_API_KEY, OPERATOR, OPTIONAL})
#: Policies that let a caller in without naming one: no role or scope can apply.
ANONYMOUS = frozenset({PUBLIC, OPERATOR, OPTIONAL})

_FOR_USERS = frozenset({JWT, JWT_OR_API_KEY})
_FOR_KEYS = frozenset({API_KEY, JWT_OR_API_KEY})


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user (JWT) or a service (API key)."""

    type: Literal["user", "api_key"]
    id: str
    name: str
    roles: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    claims: Mapping[str, Any] = field(default_factory=dict)


def refusal(
    principal: Principal | None,
    auth: str,
    roles: frozenset[str] = frozenset(),
    scopes: frozenset[str] = frozenset(),
) -> ApiError | None:
    """Why ``principal`` may not pass a check of ``auth`` with ``roles`` and ``scopes`` (401
    or 403), or None when it may. Users need every role; API keys every scope."""
    if auth in ANONYMOUS:
        return None
    if principal is None:
        return Unauthorized("Authentication is required.", code="AUTH_REQUIRED")
    if principal.type == "user":
        if auth not in _FOR_USERS:
            return Forbidden("This is for API keys only.", code="FORBIDDEN")
        if not roles <= principal.roles:
            return Forbidden("You do not have the role this needs.", code="FORBIDDEN")
        return None
    if auth not in _FOR_KEYS:
        return Forbidden("This is for users only.", code="FORBIDDEN")
    if not scopes <= principal.scopes:
        return Forbidden("The API key lacks a required scope.", code="INSUFFICIENT_SCOPE")
    return None
