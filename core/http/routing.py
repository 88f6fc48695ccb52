"""The HTTP tables of one app, built by the factory and read by the request pipeline.

- ``authenticators``: auth policy -> the function enforcing it (raises 401 or sets
  ``g.principal``), built once from the JWT and API-key managers;
- ``request_gates``: run first for every request, in order (maintenance, then per-action auth);
- ``route_policies``: endpoint -> auth policy, resolved once routes are registered;
- ``rate_limit_plans``: endpoint -> its overrides or exemption;
- ``bucket_resolvers``: endpoint -> extra rate-limit buckets for a request (actions add theirs).
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from config.loader import LoadedSettings
from config.settings import Settings
from core.edge.principal import API_KEY, JWT, JWT_OR_API_KEY, OPERATOR, PUBLIC
from core.http.auth import (
    Authenticator,
    api_key_authenticator,
    either_authenticator,
    jwt_authenticator,
    operator_token,
    resolve_policies,
)
from core.http.rate_limiter import BucketResolver, RoutePlan, resolve_routes
from core.managers.api_keys import ApiKeyManager
from core.managers.jwt import JWTManager

#: ``gate(endpoint)``: raise an ApiError to refuse the request before authentication.
RequestGate = Callable[[str | None], None]


class Routing:
    """The tables above for one app (``app.extensions["routing"]``)."""

    def __init__(
        self,
        settings: Settings,
        jwt: JWTManager,
        api_keys: ApiKeyManager,
        *,
        on_key_invalid: Callable[[str], None] = lambda code: None,
    ) -> None:
        user = jwt_authenticator(jwt)
        service = api_key_authenticator(api_keys, on_key_invalid)
        self.authenticators: dict[str, Authenticator] = {
            PUBLIC: lambda: None,
            OPERATOR: operator_token(
                settings.metrics_token,
                # prod, or a METRICS_PORT of their own: never open on the app's port
                open_without_token=not (settings.is_prod or settings.metrics_port),
            ),
            JWT: user,
            API_KEY: service,
            JWT_OR_API_KEY: either_authenticator(user, service),
        }
        self.request_gates: list[RequestGate] = []
        self.route_policies: dict[str, str] = {}
        self.rate_limit_plans: dict[str, RoutePlan] = {}
        self.bucket_resolvers: dict[str, BucketResolver] = {}

    def resolve(self, app: Flask, settings: LoadedSettings) -> None:
        """Resolve every route's auth policy and rate-limit plan once routes are registered;
        a route without a policy or with a bad limit stops start-up."""
        self.route_policies = resolve_policies(app)
        self.rate_limit_plans = resolve_routes(app, settings)
