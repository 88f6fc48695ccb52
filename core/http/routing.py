"""The endpoints of one app's routes, built by the factory and read by the request pipeline.

- ``endpoints``: Flask endpoint -> :class:`~core.edge.endpoint.Endpoint`, resolved once the
  routes are registered: a route declared with :class:`~core.http.routes.Routes` as it says
  (its auth from its path prefix when it gives none), a plain Flask route under a prefix as
  that prefix's policy; any other route stops start-up, listed. Nothing is public by accident.
- ``resolvers``: Flask endpoint -> ``resolve(view_args) -> Endpoint`` for a route that stands
  for other endpoints (``POST /actions/<name>`` is admitted as the action named).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from flask import Flask

from core.edge.endpoint import Endpoint
from core.edge.principal import API_KEY, JWT, PUBLIC
from core.errors import StartupError
from core.http.routes import ENDPOINTS

#: Path prefixes that decide a route's auth policy.
PREFIX_POLICIES = {"/public/": PUBLIC, "/userauth/": JWT, "/keyauth/": API_KEY}
#: ``resolve(view_args)``: the endpoint a request of a route stands for (raises NotFound).
Resolver = Callable[[Mapping[str, Any]], Endpoint]


def prefix_policy(path: str) -> str | None:
    for prefix, policy in PREFIX_POLICIES.items():
        if path.startswith(prefix):
            return policy
    return None


class Routing:
    """The tables above for one app (``app.extensions["routing"]``)."""

    def __init__(self) -> None:
        self.endpoints: dict[str, Endpoint] = {}
        self.resolvers: dict[str, Resolver] = {}

    def resolve(self, app: Flask) -> None:
        """Resolve every route's endpoint once routes are registered; a route without a valid
        auth policy stops start-up, listed with the others."""
        declared: Mapping[str, Endpoint] = app.extensions.get(ENDPOINTS, {})
        problems: list[str] = []
        for rule in app.url_map.iter_rules():
            by_prefix = prefix_policy(rule.rule)
            endpoint = declared.get(rule.endpoint)
            where = f"{rule.rule} (endpoint {rule.endpoint})"
            if endpoint is None:  # a plain Flask route: its prefix decides, or nothing does
                endpoint = Endpoint(kind="route", name=rule.endpoint, auth=by_prefix)
            if endpoint.auth is None:
                if by_prefix is None:
                    problems.append(f"{where} declares no auth policy")
                    continue
                try:
                    endpoint = replace(endpoint, auth=by_prefix)
                except ValueError as exc:
                    problems.append(f"{where}: {exc}")
                    continue
            elif by_prefix and endpoint.auth != by_prefix:
                problems.append(f"{where} declares {endpoint.auth!r}, its prefix {by_prefix!r}")
                continue
            if self.endpoints.setdefault(rule.endpoint, endpoint).auth != endpoint.auth:
                problems.append(f"endpoint {rule.endpoint} is reachable under two auth policies")
        if problems:
            raise StartupError(
                "routes without a valid auth policy (use a /public/, /userauth/ or /keyauth/ "
                "prefix, or auth= on the route):\n" + "\n".join(f"  - {p}" for p in problems)
            )
