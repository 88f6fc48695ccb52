"""RateLimiter: ``ip``, ``user`` and ``api_key`` levels (and ``socket`` for Socket.IO events),
bans with escalation, and the revocation checks of the request, in ONE Redis round trip.

Algorithm: GCRA (the generic cell rate algorithm). Each limit keeps one "theoretical arrival
time"; a request is allowed when it would not push that time more than one period ahead. It
is a sliding window without boundaries: N requests per period, never 2N around a boundary,
and ``Remaining`` refills smoothly. Everything happens in one Lua script (``limiter.lua``), so
concurrent requests cannot slip through between a read and a write.

Buckets: the level's default limits (``RATE_LIMIT_IP`` ...), or an endpoint's replacement of
them (``limits=`` on a route or an event) in a bucket of that endpoint; an endpoint's own
``rate_limit`` (an action's, a route's, an event's) is a bucket of its own on top
(:mod:`core.managers.admission` builds them). Bans: an identifier limited more than
``RATE_LIMIT_BAN_AFTER`` times within ``RATE_LIMIT_BAN_WINDOW`` seconds is banned for
``RATE_LIMIT_BAN_SECONDS``, doubled for each repeat offence within a week (at most
``RATE_LIMIT_BAN_MAX_FACTOR`` times). Bans live in Redis, so an unban is seen everywhere at once.

Redis unreachable or slower than ``RATE_LIMIT_REDIS_TIMEOUT_MS``: limits fail open (logged,
counted) except for levels listed in ``RATE_LIMIT_FAIL_CLOSED`` (503); revocation checks
follow ``REVOCATION_FAIL_OPEN`` (default closed: 503).
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry.trace import SpanKind, Tracer

from config.settings import Settings
from core.edge.principal import Principal
from core.errors import (
    ApiError,
    ConfigurationError,
    DependencyUnavailable,
    TooManyRequests,
)
from core.managers import spans
from core.managers.base import Manager
from core.managers.metrics import MetricsManager
from core.managers.rate_limiter.limits import Limit, parse_limits
from core.managers.redis import RedisManager, text
from core.managers.redis.scripts import Script

logger = logging.getLogger(__name__)

LEVELS = ("ip", "user", "api_key", "socket")


def caller_level(principal: Principal | None, client_ip: str | None) -> tuple[str, str]:
    """The level and identifier a caller is counted under: ``user`` (JWT) or ``api_key`` by
    the principal's id, ``ip`` by the client address when nobody is authenticated."""
    if principal is None:
        return "ip", client_ip or "unknown"
    return ("user" if principal.type == "user" else "api_key"), principal.id


_LUA = (Path(__file__).parent / "limiter.lua").read_text()
_LOG_EVERY = 10.0  # seconds between "limiter fails open" log lines during an outage
#: The script's status, as the ``rate_limit`` span reports it.
_OUTCOMES = {0: "allowed", 1: "limited", 2: "banned", 3: "revoked"}


@dataclass(frozen=True)
class Bucket:
    """One identifier at one level, with the limits that apply and where they are counted."""

    level: str
    identifier: str
    limits: tuple[Limit, ...]
    scope: str = "default"


@dataclass(frozen=True)
class Revocation:
    """A Redis key whose existence refuses the request with ``error``."""

    key: str
    error: Callable[[], ApiError]
    #: Whether Redis being unable to answer refuses the call (``REVOCATION_FAIL_OPEN`` then
    #: decides); False for a check that something else makes again (an open socket's token,
    #: re-checked by the sweep): that call goes on.
    required: bool = True


@dataclass(frozen=True)
class Quota:
    """What the ``X-RateLimit-*`` headers say: the limit with the fewest requests left."""

    limit: int
    remaining: int
    reset: int  # Unix seconds

    def header_items(self) -> tuple[tuple[str, str], ...]:
        return (
            ("X-RateLimit-Limit", str(self.limit)),
            ("X-RateLimit-Remaining", str(self.remaining)),
            ("X-RateLimit-Reset", str(self.reset)),
        )

    def headers(self) -> dict[str, str]:
        return dict(self.header_items())


@dataclass(frozen=True)
class _BucketPlan:
    """Per bucket shape: (head, tail) of each key around the identifier, and the script's
    arguments for the bucket (number of limits, then count and period of each)."""

    keys: tuple[tuple[str, str], ...]
    args: tuple[int, ...]


def _parse_setting(name: str, value: str) -> tuple[Limit, ...]:
    try:
        return parse_limits(value)
    except ValueError as exc:
        raise ConfigurationError(f"{name}: {exc}") from None


class RateLimiter(Manager):
    name = "rate_limiter"

    def __init__(
        self,
        settings: Settings,
        redis_manager: RedisManager,
        metrics: MetricsManager,
        *,
        tracer: Tracer | None = None,
    ) -> None:
        self.defaults = {
            "ip": _parse_setting("RATE_LIMIT_IP", settings.rate_limit_ip),
            "user": _parse_setting("RATE_LIMIT_USER", settings.rate_limit_user),
            "api_key": _parse_setting("RATE_LIMIT_API_KEY", settings.rate_limit_api_key),
            "socket": _parse_setting("RATE_LIMIT_SOCKET", settings.rate_limit_socket),
        }
        unknown = set(settings.rate_limit_fail_closed) - set(LEVELS)
        if unknown:
            raise ConfigurationError(f"RATE_LIMIT_FAIL_CLOSED: unknown levels {sorted(unknown)}")
        self.enabled = settings.rate_limit_enabled
        self.ipv6_prefix = settings.rate_limit_ipv6_prefix
        self.fail_closed = frozenset(settings.rate_limit_fail_closed)
        self.revocation_fail_open = settings.revocation_fail_open
        self.ban_args = (
            settings.rate_limit_ban_after,
            settings.rate_limit_ban_window,
            settings.rate_limit_ban_seconds * 1000,
            settings.rate_limit_ban_max_factor,
        )
        self.redis = redis_manager
        self.client = redis_manager.new_client(
            "python-base-04-limiter", settings.rate_limit_redis_timeout_ms
        )
        # Keys come fully built (the RedisManager's prefix included) from the bucket plans.
        self.script = Script("rate_limiter", _LUA, self.client, namespace=None, direct=True)
        self._plans: dict[tuple[str, str, tuple[Limit, ...]], _BucketPlan] = {}
        self.metrics = metrics
        #: A span around the one Redis call while tracing is on (None: no tracing code runs).
        self.tracer = tracer
        self.redis_errors = 0
        #: ``callback(level, identifier)`` for every new ban (security events).
        self.ban_listeners: list[Callable[[str, str], None]] = []
        self._last_error_log = 0.0

    # -- keys ---------------------------------------------------------------------------

    def _plan(self, bucket: Bucket) -> _BucketPlan:
        """Key templates and script arguments of a bucket's (level, scope, limits): built on
        its first request, then only the identifier is put in per request."""
        shape = (bucket.level, bucket.scope, bucket.limits)
        plan = self._plans.get(shape)
        if plan is None:
            level = bucket.level
            plan = self._plans[shape] = _BucketPlan(
                (
                    (self.redis.key("rl", "ban", level, ""), ""),
                    (self.redis.key("rl", "hits", level, ""), ""),
                    (self.redis.key("rl", "offenses", level, ""), ""),
                    *(
                        (
                            self.redis.key("rl", "tat", level, ""),
                            f":{bucket.scope}:{lim.count}-{lim.period_ms}",
                        )
                        for lim in bucket.limits
                    ),
                ),
                (
                    len(bucket.limits),
                    *(n for lim in bucket.limits for n in (lim.count, lim.period_ms)),
                ),
            )
        return plan

    def _keys(self, bucket: Bucket) -> list[str]:
        identifier = bucket.identifier
        return [head + identifier + tail for head, tail in self._plan(bucket).keys]

    def ban_key(self, level: str, identifier: str) -> str:
        """The key whose existence bans ``identifier`` at ``level`` (what the script checks)."""
        return self.redis.key("rl", "ban", level, identifier)

    def ip_identifier(self, address: str | None) -> str:
        """The ``ip`` level's identifier of a client address: IPv4 as is, IPv6 as its network
        of ``RATE_LIMIT_IPV6_PREFIX`` bits (one host owns a whole /64 and can rotate
        addresses inside it)."""
        if not address:
            return "unknown"
        return _ip_identifier(address, self.ipv6_prefix)

    def bucket(
        self, level: str, identifier: str, limits: Sequence[Limit] | None = None, scope: str = ""
    ) -> Bucket:
        """A bucket with the level's default limits unless ``limits`` are given."""
        chosen = tuple(self.defaults[level] if limits is None else limits)
        return Bucket(level, identifier, chosen, scope or "default")

    # -- the check ------------------------------------------------------------------------

    def check(
        self, buckets: Sequence[Bucket], revocations: Sequence[Revocation] = ()
    ) -> Quota | None:
        """Revocations, bans and limits in one round trip.

        Returns the quota for the headers (None when nothing limits the request); raises the
        revocation's error, 429 ``RATE_LIMITED`` / ``BANNED``, or 503 when Redis is down and
        the policy says so.
        """
        if not self.enabled:
            buckets = []
        if not buckets and not revocations:
            return None
        keys = [revocation.key for revocation in revocations]
        args: list[int] = [len(revocations), len(buckets), *self.ban_args]
        for bucket in buckets:
            keys.extend(self._keys(bucket))
            args.extend(self._plan(bucket).args)
        try:
            if self.tracer is None:
                status, index, first, second, third = self.script(keys, args)
            else:
                status, index, first, second, third = self._traced(keys, args, buckets)
        except RedisManager.unavailable_errors as exc:  # down, slow, or out of memory
            self._redis_failed(buckets, revocations, exc)
            return None
        if status == 3:
            raise revocations[index - 1].error()
        if status == 2:
            return self._ban(buckets[index - 1], first, new=bool(second))
        if status == 1:
            level = buckets[index - 1].level
            self.metrics.rate_limit_rejected(level, "limit")
            quota = Quota(second, 0, math.ceil(third / 1000))
            raise TooManyRequests(
                "Too many requests; slow down.",
                code="RATE_LIMITED",
                retry_after=math.ceil(first / 1000),
                headers=quota.headers(),
                extra={"level": level},
            )
        if first == 0:  # no limits at all (only revocations were checked)
            return None
        return Quota(first, second, math.ceil(third / 1000))

    def _traced(self, keys: list[str], args: list[int], buckets: Sequence[Bucket]) -> Any:
        """The script call in a ``rate_limit`` span: levels checked and what came out."""
        assert self.tracer is not None
        attributes = {
            "db.system.name": "redis",
            "db.operation.name": "EVALSHA",
            spans.RATE_LIMIT_LEVELS: [bucket.level for bucket in buckets],
        }
        with spans.span(self.tracer, "rate_limit", attributes, SpanKind.CLIENT) as current:
            try:
                result = self.script(keys, args)
            except RedisManager.unavailable_errors:
                spans.failed(current, "DEPENDENCY_UNAVAILABLE")
                raise
            current.set_attribute(spans.RATE_LIMIT_OUTCOME, _OUTCOMES[result[0]])
            return result

    def _ban(self, bucket: Bucket, ms_left: int, new: bool) -> Quota:
        self.metrics.rate_limit_rejected(bucket.level, "ban")
        if new:
            self.metrics.ban_issued(bucket.level)
            for listener in self.ban_listeners:
                listener(bucket.level, bucket.identifier)
        raise TooManyRequests(
            "Too many requests: this client is temporarily banned.",
            code="BANNED",
            retry_after=math.ceil(ms_left / 1000),
            extra={"level": bucket.level},
        )

    def _redis_failed(
        self, buckets: Sequence[Bucket], revocations: Sequence[Revocation], error: Exception
    ) -> None:
        self.redis_errors += 1
        self.metrics.rate_limiter_redis_error()
        now = time.monotonic()
        if now - self._last_error_log > _LOG_EVERY:
            self._last_error_log = now
            logger.warning(
                "rate limiter cannot use redis (unreachable, slow or out of memory)",
                extra={"errors": self.redis_errors, "error": f"{type(error).__name__}: {error}"},
            )
        if any(r.required for r in revocations) and not self.revocation_fail_open:
            raise DependencyUnavailable("redis")
        if any(bucket.level in self.fail_closed for bucket in buckets):
            raise DependencyUnavailable("redis")

    # -- bans -----------------------------------------------------------------------------

    def bans(self) -> list[dict[str, Any]]:
        """Active bans: level, identifier, offences and seconds left (SCAN, never KEYS)."""
        prefix = self.redis.key("rl", "ban", "")
        found = []
        for raw in self.redis.client.scan_iter(match=prefix + "*", count=500):
            key = text(raw)
            level, _, identifier = key[len(prefix) :].partition(":")
            with self.redis.client.pipeline(transaction=False) as pipe:
                pipe.get(key)
                pipe.pttl(key)
                offenses, left = pipe.execute()
            if left and left > 0:
                found.append(
                    {
                        "level": level,
                        "identifier": identifier,
                        "offenses": int(offenses or 1),
                        "seconds_left": math.ceil(left / 1000),
                    }
                )
        return sorted(found, key=lambda ban: (ban["level"], ban["identifier"]))

    def unban(self, level: str, identifier: str) -> bool:
        """Lift a ban (and its hit count) at once, for every instance. False if none."""
        if level not in LEVELS:
            raise ValueError(f"unknown level {level!r}; use one of {', '.join(LEVELS)}")
        who = (level, identifier)
        with self.redis.client.pipeline(transaction=True) as pipe:
            pipe.delete(self.ban_key(*who))
            pipe.delete(self.redis.key("rl", "hits", *who))
            banned, _ = pipe.execute()
        return bool(banned)

    def close(self) -> None:
        self.client.close()


@functools.lru_cache(maxsize=4096)
def _ip_identifier(address: str, ipv6_prefix: int) -> str:
    """:meth:`RateLimiter.ip_identifier`, remembered: a request, an Engine.IO opening and a
    Socket.IO connect each ask for it, mostly for the same few addresses."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/{ipv6_prefix}", strict=False))
    return str(parsed)
