"""Who is calling this request: :func:`current_principal`.

Routes declare their auth policy on the route (``Routes``, ``auth=``) or by their path prefix
(:data:`core.http.routing.PREFIX_POLICIES`); admission (:mod:`core.managers.admission`)
enforces it for every request, before the view runs, and leaves the caller in ``g.principal``.
"""

from __future__ import annotations

from flask import g

from core.edge.principal import (
    API_KEY,
    JWT,
    JWT_OR_API_KEY,
    OPERATOR,
    OPTIONAL,
    POLICIES,
    PUBLIC,
    Principal,
)
from core.errors import Unauthorized

#: What module code imports from here: the policies and Principal come from :mod:`core.edge`.
__all__ = [
    "API_KEY",
    "JWT",
    "JWT_OR_API_KEY",
    "OPERATOR",
    "OPTIONAL",
    "POLICIES",
    "PUBLIC",
    "Principal",
    "current_principal",
]


def current_principal() -> Principal:
    """The authenticated caller of this request; 401 when there is none."""
    principal: Principal | None = g.get("principal")
    if principal is None:
        raise Unauthorized("Authentication is required.", code="AUTH_REQUIRED")
    return principal
