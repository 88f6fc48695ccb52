"""Rate limiting in the request pipeline: route overrides, exemptions and the headers.

``@rate_limit(ip="5/minute")`` replaces a level's default limits for one route (counted in a
bucket of that route); a limit may also be read from the settings at start-up, core's or a
module's: ``@rate_limit(ip=lambda loaded: loaded.settings_of(AuthSettings).rate_limit_login)``.
``@exempt`` takes a route out of rate limiting (health routes are exempt by path; ``/metrics``
is not: its token must not be guessable at speed).
Limits are parsed once at start-up: a bad limit string stops start-up naming the route.

Per request the pipeline builds the caller's buckets: ``ip`` always, plus ``user`` (JWT) or
``api_key``, plus any extra buckets a resolver adds for the endpoint (actions add their own
``rate_limit``), and checks them together with the revocation marks of the credential in the
limiter's single Redis round trip.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from flask import Flask, g, request

from core.edge.principal import Principal
from core.errors import StartupError
from core.managers.rate_limiter import Bucket, Quota, RateLimiter, Revocation, caller_level
from core.managers.rate_limiter.limits import Limit, parse_limits

if TYPE_CHECKING:
    from config.loader import LoadedSettings

F = TypeVar("F", bound=Callable[..., Any])
#: A limit string, or a function of the settings (core and modules') answering one, read once
#: at start-up.
LimitSource: TypeAlias = "str | Callable[[LoadedSettings], str]"
EXEMPT_PATHS = ("/health/",)
#: ``resolver(view_args, principal) -> extra buckets`` registered per endpoint.
BucketResolver = Callable[[Mapping[str, Any], "Principal | None"], list[Bucket]]


def rate_limit(
    *,
    ip: LimitSource | None = None,
    user: LimitSource | None = None,
    api_key: LimitSource | None = None,
) -> Callable[[F], F]:
    """Override the default limits of some levels for this route."""
    overrides = {
        level: value
        for level, value in (("ip", ip), ("user", user), ("api_key", api_key))
        if value is not None
    }

    def decorator(view: F) -> F:
        view.rate_limits = overrides  # type: ignore[attr-defined]
        return view

    return decorator


def exempt(view: F) -> F:
    """Take this route out of rate limiting (and bans)."""
    view.rate_limit_exempt = True  # type: ignore[attr-defined]
    return view


@dataclass
class RoutePlan:
    """What the limiter does for one endpoint, resolved at start-up."""

    exempt: bool = False
    overrides: dict[str, tuple[Limit, ...]] = field(default_factory=dict)


def resolve_routes(app: Flask, settings: LoadedSettings) -> dict[str, RoutePlan]:
    plans: dict[str, RoutePlan] = {}
    problems = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions.get(rule.endpoint)
        plan = plans.setdefault(rule.endpoint, RoutePlan())
        if rule.rule.startswith(EXEMPT_PATHS) or getattr(view, "rate_limit_exempt", False):
            plan.exempt = True
        for level, source in getattr(view, "rate_limits", {}).items():
            try:
                plan.overrides[level] = parse_limits(
                    source(settings) if callable(source) else source
                )
            except ValueError as exc:
                problems.append(f"{rule.rule}: {level}: {exc}")
    if problems:
        raise StartupError("invalid rate limits:\n" + "\n".join(f"  - {p}" for p in problems))
    return plans


def enforce(
    limiter: RateLimiter,
    plan: RoutePlan | None,
    resolver: BucketResolver | None,
    endpoint: str | None,
) -> None:
    """The limiter step of the pipeline for ``endpoint`` with its plan and bucket resolver;
    stores the quota for :func:`header_items`."""
    plan = plan or RoutePlan()
    revocations: list[Revocation] = g.get("revocations", [])
    if plan.exempt:
        if revocations:
            limiter.check([], revocations)
        return
    scope = (endpoint or "") if plan.overrides else ""
    principal: Principal | None = g.get("principal")
    buckets = [_bucket(limiter, plan, "ip", limiter.ip_identifier(request.remote_addr), scope)]
    if principal is not None:
        level, identifier = caller_level(principal, None)
        buckets.append(_bucket(limiter, plan, level, identifier, scope))
    if resolver is not None:
        buckets.extend(resolver(request.view_args or {}, principal))
    g.rate_limit_quota = limiter.check(buckets, revocations)


def _bucket(
    limiter: RateLimiter, plan: RoutePlan, level: str, identifier: str, scope: str
) -> Bucket:
    overrides = plan.overrides.get(level)
    return limiter.bucket(level, identifier, overrides, scope if overrides else "")


def header_items() -> tuple[tuple[str, str], ...]:
    """The ``X-RateLimit-*`` headers of this request's quota (none when nothing limited it)."""
    quota: Quota | None = g.get("rate_limit_quota")
    return () if quota is None else quota.header_items()
