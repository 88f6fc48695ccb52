"""What an action is: the YAML file format (itself a JSON Schema) and the compiled :class:`Action`.

A declaration file is a mapping with one key, ``actions``, holding a list of declarations::

    actions:
      - name: notes.create              # unique, dotted, [a-z0-9_.-]; in a module's
                                        # actions.yaml ".create" means "<module>.create"
        description: Create a note.
        handler: .handlers:create       # package.module:function; ".x:f" relative to the module
        auth: jwt                       # public | jwt | api_key | jwt_or_api_key
        roles: []                       # users must have every role
        scopes: [notes:write]           # API keys must have every scope
        params: {type: object, ...}     # JSON Schema (draft 2020-12) of the body object
        result: {...}                   # optional JSON Schema of the result
        rate_limit: "5/second;100/minute"
        errors: {NOT_FOUND: 404}        # problem codes the handler raises, and their status
        audit: true                     # default true
        timeout: 5                      # seconds; see docs/actions.md for how it is enforced

Objects in ``params`` refuse unknown fields unless the schema says otherwise
(:func:`core.edge.validation.close_objects`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.edge.endpoint import Endpoint
from core.edge.principal import API_KEY, JWT, JWT_OR_API_KEY, PUBLIC, Principal, refusal
from core.errors import ApiError, Unauthorized

if TYPE_CHECKING:
    from jsonschema.protocols import Validator


@dataclass(frozen=True)
class ActionContext:
    """What a handler gets besides its params: ``handler(params, context)``."""

    #: The caller: a user (JWT) or an API key; None for public actions.
    principal: Principal | None
    request_id: str | None
    #: The action's name.
    action: str

    def require_principal(self) -> Principal:
        """The caller; 401 when there is none (a public action called anonymously)."""
        if self.principal is None:
            raise Unauthorized("Authentication is required.", code="AUTH_REQUIRED")
        return self.principal


Handler = Callable[[dict[str, Any], ActionContext], Any]

AUTH_KINDS = (PUBLIC, JWT, API_KEY, JWT_OR_API_KEY)
NAME_PATTERN = r"^[a-z0-9_-]+(\.[a-z0-9_-]+)+$"
_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
HANDLER_PATTERN = rf"^(\.|\.?{_IDENTIFIER}(\.{_IDENTIFIER})*):{_IDENTIFIER}$"

_STRINGS = {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": True}

#: The JSON Schema every declaration file is validated against.
FILE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["actions"],
    "additionalProperties": False,
    "properties": {"actions": {"type": "array", "items": {"$ref": "#/$defs/action"}}},
    "$defs": {
        "action": {
            "type": "object",
            "required": ["name", "description", "handler", "auth"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "pattern": NAME_PATTERN, "maxLength": 100},
                "description": {"type": "string", "minLength": 1},
                "handler": {"type": "string", "pattern": HANDLER_PATTERN},
                "auth": {"enum": list(AUTH_KINDS)},
                "roles": _STRINGS,
                "scopes": _STRINGS,
                "params": {"type": "object"},
                "result": {"type": ["object", "boolean"]},
                # A limit ("10/second;1000/day") or the setting holding one, by its public
                # name ({setting: SHELF_CREATE_RATE_LIMIT}), read at start-up.
                "rate_limit": {
                    "oneOf": [
                        {"type": "string", "minLength": 1},
                        {
                            "type": "object",
                            "required": ["setting"],
                            "additionalProperties": False,
                            "properties": {
                                "setting": {"type": "string", "pattern": "^[A-Z][A-Z0-9_]*$"}
                            },
                        },
                    ]
                },
                "errors": {
                    "type": "object",
                    "patternProperties": {
                        "^[A-Z][A-Z0-9_]*$": {"type": "integer", "minimum": 400, "maximum": 599}
                    },
                    "additionalProperties": False,
                },
                "audit": {"type": "boolean"},
                "idempotent": {"type": "boolean"},
                "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
            },
        }
    },
}


@dataclass(frozen=True)
class Action:
    """A declared action, checked and compiled at start-up."""

    name: str
    description: str
    handler: Handler = field(repr=False)
    #: ``package.module:function`` as declared: for operators (CLI), never sent to clients.
    handler_ref: str
    #: What admission and the documents read: auth, roles, scopes, the ``rate_limit`` in
    #: effect (a setting's value already read), the declared errors, the params and result.
    endpoint: Endpoint
    #: The enforced schema of the body (unknown fields closed: ``close_objects``).
    params: dict[str, Any]
    result: dict[str, Any] | bool | None
    audit: bool
    timeout: float | None
    #: ``file:line`` (or ``module <name>`` for actions declared in code).
    source: str
    params_validator: Validator = field(repr=False, compare=False)
    result_validator: Validator | None = field(repr=False, compare=False)
    #: Top-level ``default`` values of ``params``, filled in for fields the caller left out.
    defaults: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def auth(self) -> str:
        return self.endpoint.auth or PUBLIC

    @property
    def roles(self) -> frozenset[str]:
        return self.endpoint.roles

    @property
    def scopes(self) -> frozenset[str]:
        return self.endpoint.scopes

    @property
    def rate_limit(self) -> str | None:
        """The limit in effect, per caller, on top of the levels' (None: none of its own)."""
        limit = self.endpoint.rate_limit
        return limit if isinstance(limit, str) else None

    @property
    def errors(self) -> Mapping[str, int]:
        """The problems the handler answers with, ``code -> status`` (documented in OpenAPI)."""
        return self.endpoint.errors

    @property
    def idempotent(self) -> bool:
        """Honours ``Idempotency-Key`` (core.http.idempotency): a retried call runs once."""
        return self.endpoint.idempotent

    def refusal(self, principal: Principal | None) -> ApiError | None:
        """Why ``principal`` may not call this action (401 / 403), or None when it may: the
        rule of routes too (:func:`core.edge.principal.refusal`, docs/auth.md)."""
        return refusal(principal, self.auth, self.roles, self.scopes)

    def accepts(self, principal: Principal | None) -> bool:
        return self.refusal(principal) is None

    def requirements(self) -> list[tuple[str, str]]:
        """What calling it takes, as ``(name, value)`` pairs, for listings and docs."""
        needs = [("auth", self.auth)]
        if self.roles:
            needs.append(("roles", ",".join(sorted(self.roles))))
        if self.scopes:
            needs.append(("scopes", ",".join(sorted(self.scopes))))
        if self.rate_limit:
            needs.append(("rate_limit", self.rate_limit))
        return needs

    def describe(self) -> dict[str, Any]:
        """The public metadata of ``GET /actions`` (never the handler)."""
        return {
            "name": self.name,
            "description": self.description,
            "auth": self.auth,
            "roles": sorted(self.roles),
            "scopes": sorted(self.scopes),
            "params": self.params,
            "rate_limit": self.rate_limit,
        }

    def with_defaults(self, params: Mapping[str, Any]) -> dict[str, Any]:
        filled = {k: copy.deepcopy(v) for k, v in self.defaults.items() if k not in params}
        return {**params, **filled}
