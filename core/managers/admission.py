"""Admission: the one way in, for every door.

:meth:`Admission.admit` takes an :class:`~core.edge.endpoint.Endpoint` (a route, an action, a
socket event) and a :class:`Caller` (where from, what it presents) and either answers who the
caller is (:class:`Admitted`) or raises the ApiError that refuses it, always in this order:

1. **gates**: maintenance mode (503 ``MAINTENANCE``) unless the endpoint is
   ``open_in_maintenance``; read from the StateManager's local cache, no round trip;
2. **authentication** by the endpoint's auth policy (CPU only: the token's signature and
   claims, the API key's hash); a caller on an open socket was authenticated when it connected;
3. **one limiter call**, ONE Redis round trip: the credential's revocation marks, the bans and
   limits of every level that applies, and the endpoint's own bucket. A request or a connect
   counts at ``ip`` and at its caller's level (``user`` or ``api_key``); an event on an open
   socket counts at ``socket`` (per user) and is refused by a ban of its address or user. A
   caller refused by authentication is still counted at ``ip``: guessing is limited;
4. **roles and scopes** (:func:`core.edge.principal.refusal`): 403.

Its callers: the HTTP stack (routes, and ``POST /actions/<name>`` with the action's own
endpoint), the Socket.IO connect and every socket event, and :meth:`Admission.admit_ip` for an
Engine.IO connection being opened (the ``ip`` level only). Limits declared with
:class:`~core.edge.endpoint.Setting` are read once, and every endpoint's limits are parsed
once: a bad one is named by :meth:`Admission.problems` at start-up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from config.settings import Settings
from core.edge.bearer import token_matches
from core.edge.endpoint import Endpoint, LimitSource, Setting
from core.edge.principal import (
    ANONYMOUS,
    API_KEY,
    JWT,
    JWT_OR_API_KEY,
    OPERATOR,
    OPTIONAL,
    PUBLIC,
    Principal,
    refusal,
)
from core.errors import ApiError, DependencyUnavailable, Maintenance, Unauthorized
from core.managers.api_keys import ApiKeyManager
from core.managers.base import Manager
from core.managers.jwt import JWTManager, token_revoked
from core.managers.rate_limiter import Bucket, Quota, RateLimiter, Revocation, caller_level
from core.managers.rate_limiter.limits import Limit, parse_limits
from core.managers.state import StateManager
from core.managers.state.maintenance import DEFAULT_MESSAGE, MACHINE, ON, define

logger = logging.getLogger(__name__)

#: An Engine.IO connection being opened, before any Socket.IO CONNECT: counted at ``ip``,
#: open during maintenance (the CONNECT that follows is refused with a readable reason).
ENGINEIO_OPEN = Endpoint(kind="route", name="engineio.open", auth=PUBLIC, open_in_maintenance=True)
#: A Socket.IO CONNECT: a user's access token, counted at ``ip`` and ``user``.
SOCKET_CONNECT = Endpoint(
    kind="event", name="connect", auth=JWT, summary="Open a Socket.IO session."
)
#: Answers what a setting of that public name holds (``LoadedSettings.value_of``).
SettingOf = Callable[[str], Any]


@dataclass(frozen=True)
class Caller:
    """Who knocks, whichever the door: the client address and what it presents."""

    #: The client address (after the trusted proxies), the ``ip`` level's identifier.
    ip: str | None
    #: An access token: ``Authorization: Bearer``, or the Socket.IO ``auth`` payload's token.
    bearer: str | None = None
    #: An API key (``X-API-Key``).
    api_key: str | None = None
    #: The user of an open socket, authenticated when it connected (socket events).
    session: Principal | None = None
    #: A CORS preflight: it carries no credential by design and is not authenticated.
    preflight: bool = False
    #: The request id, for the listeners' records (audit rows, logs).
    request_id: str | None = None


@dataclass(frozen=True)
class Admitted:
    """A caller let in: who it is (None: anonymous) and its quota (the rate-limit headers)."""

    principal: Principal | None
    quota: Quota | None = None


#: ``listener(endpoint, caller, principal, error)`` for every refusal after authentication
#: (roles and scopes): the actions' audit rows.
RefusalListener = Callable[[Endpoint, Caller, Principal, ApiError], None]


@dataclass
class _Plan:
    """An endpoint's limits, parsed: level -> replacement limits, and its own limits."""

    levels: dict[str, tuple[Limit, ...]] = field(default_factory=dict)
    own: tuple[Limit, ...] | None = None


class Admission(Manager):
    """The admission function of one app (``app_manager.admission``)."""

    name = "admission"

    def __init__(
        self,
        settings: Settings,
        *,
        state: StateManager,
        jwt: JWTManager,
        api_keys: ApiKeyManager,
        rate_limiter: RateLimiter,
        setting: SettingOf = lambda name: None,
        on_key_invalid: Callable[[str], None] = lambda code: None,
    ) -> None:
        self.state = state
        self.jwt = jwt
        self.api_keys = api_keys
        self.limiter = rate_limiter
        self._setting = setting
        #: Told of every refused API key (a security event), with the refusal's code.
        self.on_key_invalid = on_key_invalid
        #: Told of every caller refused by its roles or scopes.
        self.refusal_listeners: list[RefusalListener] = []
        token = settings.metrics_token
        self._operator_token = token.encode() if token else None
        # prod, or a METRICS_PORT of their own: the app's port serves operators nobody then
        self._operator_closed = token is None and (settings.is_prod or bool(settings.metrics_port))
        self._plans: dict[tuple[str, str], _Plan] = {}
        define(state)  # the maintenance machine the gate reads

    # -- the one function -------------------------------------------------------------------

    def admit(self, endpoint: Endpoint, caller: Caller) -> Admitted:
        """Let ``caller`` in to ``endpoint`` or raise why not (see the module docstring)."""
        if not endpoint.open_in_maintenance:
            self._maintenance_gate()
        plan = self.plan(endpoint)
        try:
            principal, revocations = self._authenticate(endpoint, caller)
        except Unauthorized:
            if not endpoint.rate_limit_exempt:  # guessing credentials is limited
                self.limiter.check(self._buckets(endpoint, plan, caller, None))
            raise
        if endpoint.rate_limit_exempt:
            quota = self.limiter.check([], revocations) if revocations else None
        else:
            quota = self.limiter.check(
                self._buckets(endpoint, plan, caller, principal), revocations
            )
        if principal is not None and endpoint.auth not in ANONYMOUS:
            refused = refusal(principal, endpoint.auth or JWT, endpoint.roles, endpoint.scopes)
            if refused is not None:
                for listener in self.refusal_listeners:
                    listener(endpoint, caller, principal, refused)
                raise refused
        return Admitted(principal, quota)

    def admit_ip(self, address: str | None) -> Quota | None:
        """Admit an Engine.IO connection being opened from ``address``: the ``ip`` level's
        limits and bans only (:data:`ENGINEIO_OPEN`)."""
        return self.admit(ENGINEIO_OPEN, Caller(ip=address)).quota

    # -- the steps --------------------------------------------------------------------------

    def _maintenance_gate(self) -> None:
        try:
            current = self.state.get(MACHINE)
        except DependencyUnavailable:
            # Redis and MongoDB both unreachable and nothing cached: an outage must not pass
            # for maintenance; endpoints that need a store answer 503 on their own.
            return
        if current.state == ON:
            raise Maintenance(str(current.data.get("message") or DEFAULT_MESSAGE))

    def _authenticate(
        self, endpoint: Endpoint, caller: Caller
    ) -> tuple[Principal | None, Sequence[Revocation]]:
        """The caller and the revocation marks of its credential; raises 401."""
        if caller.session is not None:
            # Checked at connect (required then) and by the socket sweep every interval: an
            # event's look is the early refusal, so Redis failing to answer does not fail it.
            return caller.session, self._token_marks(caller.session.claims, required=False)
        policy = endpoint.auth or PUBLIC
        if policy == PUBLIC or caller.preflight:
            return None, []
        if policy == OPERATOR:
            if self._operator_closed or not token_matches(caller.bearer, self._operator_token):
                raise Unauthorized("A valid bearer token is required.", code="AUTH_REQUIRED")
            return None, []
        if policy == JWT or (policy in (JWT_OR_API_KEY, OPTIONAL) and caller.bearer):
            return self._user(caller.bearer)
        if policy == API_KEY or (policy in (JWT_OR_API_KEY, OPTIONAL) and caller.api_key):
            return self._service(caller.api_key)
        if policy == OPTIONAL:
            return None, []
        raise Unauthorized("A bearer token or an API key is required.", code="AUTH_REQUIRED")

    def _user(self, token: str | None) -> tuple[Principal, Sequence[Revocation]]:
        if not token:
            raise Unauthorized("A bearer access token is required.", code="AUTH_REQUIRED")
        # Signature and claims here (CPU only; the time claims and type on every request); the
        # revocation marks go in the limiter call. The Principal and the marks are made once
        # per token and kept in the JWT manager's cache with its verified claims.
        return self.jwt.decode_as(token, self._user_of)

    def _user_of(self, claims: Mapping[str, Any]) -> tuple[Principal, tuple[Revocation, ...]]:
        """An access token's Principal and revocation marks (read-only: later requests with
        the same token share them)."""
        principal = Principal(
            "user",
            claims["sub"],
            str(claims.get("username", "")),
            roles=frozenset(claims.get("roles", ())),
            claims=claims,
        )
        return principal, tuple(self._token_marks(claims))

    def _token_marks(self, claims: Mapping[str, Any], *, required: bool = True) -> list[Revocation]:
        keys = self.jwt.revocation_keys(claims)
        return [Revocation(key, token_revoked, required) for key in keys]

    def _service(self, presented: str | None) -> tuple[Principal, list[Revocation]]:
        if not presented:
            raise Unauthorized("An X-API-Key header is required.", code="API_KEY_REQUIRED")
        try:
            key = self.api_keys.verify(presented, check_revoked=False)
        except Unauthorized as exc:
            self.on_key_invalid(exc.code)
            raise

        def revoked() -> ApiError:
            self.on_key_invalid("API_KEY_REVOKED")
            return Unauthorized("The API key is invalid.", code="API_KEY_INVALID")

        principal = Principal("api_key", key.id, key.name, scopes=frozenset(key.scopes))
        return principal, [Revocation(self.api_keys.revoked_key(key.prefix), revoked)]

    def _buckets(
        self, endpoint: Endpoint, plan: _Plan, caller: Caller, principal: Principal | None
    ) -> list[Bucket]:
        """The buckets a call counts in (see the module docstring)."""
        limiter = self.limiter
        scope = f"{endpoint.kind}:{endpoint.name}"

        def bucket(level: str, identifier: str) -> Bucket:
            replaced = plan.levels.get(level)
            return limiter.bucket(level, identifier, replaced, scope if replaced else "")

        address = limiter.ip_identifier(caller.ip)
        if caller.session is not None:  # an event on an open socket
            user = caller.session.id
            buckets = [
                bucket("socket", user),
                limiter.bucket("ip", address, ()),  # bans only: events have their own level
                limiter.bucket("user", user, ()),
            ]
            owner = ("socket", user)
        else:
            buckets = [bucket("ip", address)]
            if principal is not None:
                buckets.append(bucket(*caller_level(principal, None)))
            owner = caller_level(principal, address)
        if plan.own is not None:
            buckets.append(limiter.bucket(owner[0], owner[1], plan.own, scope))
        return buckets

    # -- limits -----------------------------------------------------------------------------

    def plan(self, endpoint: Endpoint) -> _Plan:
        """The endpoint's limits, parsed once (ValueError names what is wrong)."""
        key = (endpoint.kind, endpoint.name)
        plan = self._plans.get(key)
        if plan is None:
            plan = _Plan(
                {level: self._parse(source) for level, source in endpoint.limits.items()},
                None if endpoint.rate_limit is None else self._parse(endpoint.rate_limit),
            )
            self._plans[key] = plan
        return plan

    def problems(self, endpoints: Iterable[Endpoint]) -> list[str]:
        """What is wrong with the limits of ``endpoints`` (start-up stops on any), one line
        each; the good ones are parsed and kept."""
        found = []
        for endpoint in endpoints:
            try:
                self.plan(endpoint)
            except ValueError as exc:
                found.append(f"{endpoint.kind} {endpoint.name}: {exc}")
        return found

    def _parse(self, source: LimitSource) -> tuple[Limit, ...]:
        if isinstance(source, Setting):
            value = self._setting(source.name)
            if not isinstance(value, str):
                raise ValueError(f"no setting {source.name} holds a limit")
            return parse_limits(value)
        return parse_limits(source)
