"""Routes: a Blueprint whose one decorator per route carries every fact of the route.

::

    bp = Routes("shelf", __name__)

    @bp.post(
        "/userauth/shelf/items",
        body=NewItem,
        response=Item,
        status=201,
        errors={"SHELF_FULL": 409},
        limits={"user": "5/second"},
    )
    def create_item(body: NewItem) -> Item:
        \"\"\"Create an item.\"\"\"  # the summary in /openapi.json

Each route compiles to one :class:`~core.edge.endpoint.Endpoint` (kind ``route``): admission
(auth, roles, scopes, limits, maintenance), validation and the answer (:mod:`core.http.typed`)
and ``/openapi.json`` read it. Nothing is stored on the view function, so there is no
decorator order to get wrong. The facts, all keyword arguments of ``route``/``get``/``post``/
``put``/``patch``/``delete``:

=====================  ======================================================================
``auth``               the policy (``core.edge.principal``); required outside the prefixes
                       that decide (``/public/`` none, ``/userauth/`` JWT, ``/keyauth/`` API key)
``roles``, ``scopes``  users need every role, API keys every scope (403)
``limits``             ``{"ip": "5/minute"}``: replaces a level's default limits for this
                       route, in a bucket of its own; a limit may be ``Setting("NAME")``
``rate_limit``         the route's own limit per caller, on top of the levels'
``body``, ``query``    the models of the JSON body and the query string
``response``           the model of the success answer; ``status`` its status (200, or 204
                       without a response model or ``media_type``)
``responses``          other statuses answered with a body: ``{503: Readiness}``
``media_type``         a non-JSON answer (the view returns a ``Response``)
``errors``             the problems it answers with: ``{"CODE": status}``
``rate_limit_exempt``  out of rate limiting and bans (health probes)
``open_in_maintenance``  served while maintenance mode is on (health, metrics, the switch)
``idempotent``         safe to retry with the same input
``summary``            else the view's first docstring line; ``description`` else the rest
=====================  ======================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypedDict, TypeVar, Unpack

from flask import Blueprint
from flask.sansio.blueprints import BlueprintSetupState
from pydantic import BaseModel

from core.edge.endpoint import Endpoint, LimitSource, declared_errors, frozen, summary_of
from core.edge.validation import Schema
from core.http.typed import typed_view

__all__ = ["ENDPOINTS", "Routes"]

#: The ``app.extensions`` key of ``{flask endpoint: Endpoint}`` as the routes declared them.
ENDPOINTS = "endpoints"
F = TypeVar("F", bound=Callable[..., Any])
Model = type[BaseModel]


class RouteFacts(TypedDict, total=False):
    """The keyword arguments of a route: the facts of its endpoint (see the module docstring)
    and the Flask options a route may still take."""

    summary: str
    description: str
    auth: str
    roles: Iterable[str]
    scopes: Iterable[str]
    limits: Mapping[str, LimitSource]
    rate_limit: LimitSource
    body: Model
    query: Model
    response: Model
    status: int
    responses: Mapping[int, Model | None]
    media_type: str | Sequence[str]
    errors: Mapping[str, int]
    rate_limit_exempt: bool
    open_in_maintenance: bool
    idempotent: bool
    #: Flask's: the endpoint's local name (default: the view's name), trailing slashes.
    endpoint: str
    strict_slashes: bool


class Routes(Blueprint):
    """A Blueprint of declared routes (see the module docstring)."""

    def get(  # type: ignore[override]
        self, rule: str, **facts: Unpack[RouteFacts]
    ) -> Callable[[F], F]:
        return self.route(rule, methods=["GET"], **facts)

    def post(  # type: ignore[override]
        self, rule: str, **facts: Unpack[RouteFacts]
    ) -> Callable[[F], F]:
        return self.route(rule, methods=["POST"], **facts)

    def put(  # type: ignore[override]
        self, rule: str, **facts: Unpack[RouteFacts]
    ) -> Callable[[F], F]:
        return self.route(rule, methods=["PUT"], **facts)

    def patch(  # type: ignore[override]
        self, rule: str, **facts: Unpack[RouteFacts]
    ) -> Callable[[F], F]:
        return self.route(rule, methods=["PATCH"], **facts)

    def delete(  # type: ignore[override]
        self, rule: str, **facts: Unpack[RouteFacts]
    ) -> Callable[[F], F]:
        return self.route(rule, methods=["DELETE"], **facts)

    def route(self, rule: str, **options: Any) -> Callable[[F], F]:
        facts = {name: options.pop(name) for name in list(options) if name in _FACTS}

        def decorator(view: F) -> F:
            local = options.pop("endpoint", None) or view.__name__
            endpoint = declare(local, view, **facts)
            self.add_url_rule(rule, local, typed_view(endpoint, view), **options)
            self.record(lambda state: _register(state, local, endpoint))
            return view

        return decorator


def declare(
    name: str,
    view: Callable[..., Any],
    *,
    summary: str | None = None,
    description: str | None = None,
    auth: str | None = None,
    roles: Iterable[str] | None = None,
    scopes: Iterable[str] | None = None,
    limits: Mapping[str, LimitSource] | None = None,
    rate_limit: LimitSource | None = None,
    body: Model | None = None,
    query: Model | None = None,
    response: Model | None = None,
    status: int | None = None,
    responses: Mapping[int, Model | None] | None = None,
    media_type: str | Sequence[str] | None = None,
    errors: Mapping[str, int] | None = None,
    rate_limit_exempt: bool = False,
    open_in_maintenance: bool = False,
    idempotent: bool = False,
) -> Endpoint:
    """The :class:`Endpoint` of a route (its name completed when the blueprint is registered)."""
    media_types = (media_type,) if isinstance(media_type, str) else tuple(media_type or ())
    if response is not None and media_types:
        raise ValueError(f"route {name}: a response model is JSON; drop media_type or the model")
    summary, description = summary_of(view.__doc__, name, summary, description)
    return Endpoint(
        kind="route",
        name=name,
        summary=summary,
        description=description,
        auth=auth,
        roles=frozen(roles),
        scopes=frozen(scopes),
        limits=dict(limits or {}),
        rate_limit=rate_limit,
        input=None if body is None else Schema.of(body),
        query=None if query is None else Schema.of(query),
        output=None if response is None else Schema.of(response),
        status=status or (200 if response is not None or media_types else 204),
        responses={
            code: None if model is None else Schema.of(model)
            for code, model in (responses or {}).items()
        },
        media_types=media_types,
        errors=declared_errors(f"route {name}", errors),
        rate_limit_exempt=rate_limit_exempt,
        open_in_maintenance=open_in_maintenance,
        idempotent=idempotent,
    )


#: The keyword arguments of a route that are facts of its endpoint, not Flask options.
_FACTS = frozenset(declare.__kwdefaults__ or {})


def _register(state: BlueprintSetupState, local: str, endpoint: Endpoint) -> None:
    """Put the endpoint in the app's table under its full Flask endpoint name."""
    full = f"{state.name_prefix}.{state.name}.{local}".lstrip(".")
    state.app.extensions.setdefault(ENDPOINTS, {})[full] = replace(endpoint, name=full)
