"""``GET /actions`` and ``POST /actions/<name>``: the HTTP surface of the ActionManager.

Both routes are declared ``public`` because their auth depends on the action, not the path.
A request gate (:func:`authenticate`, run by the pipeline before its auth and rate-limit steps
and before the body is read) resolves the action and runs the authenticator of its ``auth``
(``Routing.authenticators``), so:

- an unknown action is 404 ``ACTION_NOT_FOUND`` and a missing or bad credential 401, without
  the body being read, exactly as for routes whose prefix decides;
- the caller (``g.principal``) is known to the rate limiter's step that follows.

``GET /actions`` authenticates a credential when one is sent (bearer token or ``X-API-Key``;
a bad one is 401) and then lists only what that caller may call; without one it lists every
action with its auth requirements.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from flask import Blueprint, Flask, g, request
from pydantic import BaseModel, RootModel

from core.app_manager import AppManager, get_app_manager
from core.edge.principal import JWT_OR_API_KEY, PUBLIC, Principal
from core.http.auth import Authenticator, declare_auth
from core.http.rate_limiter import BucketResolver
from core.http.routing import Routing
from core.http.typed import typed
from core.managers.actions import Action, ActionContext, ActionManager
from core.managers.rate_limiter import Bucket, caller_level

bp = Blueprint("actions", __name__)
INDEX_ENDPOINT = "actions.index"
EXECUTE_ENDPOINT = "actions.execute"


def install(app: Flask, app_manager: AppManager, routing: Routing) -> None:
    """Register the routes and the auth gate (after the maintenance gate)."""
    app.register_blueprint(bp)
    authenticators = routing.authenticators
    routing.request_gates.append(
        lambda endpoint: authenticate(app_manager.actions, authenticators, endpoint)
    )
    routing.bucket_resolvers[EXECUTE_ENDPOINT] = action_buckets(app_manager)


def action_buckets(app_manager: AppManager) -> BucketResolver:
    """An action's own ``rate_limit`` (parsed when the action was loaded), counted per caller
    in a bucket of the action, on top of the defaults and in the same Redis round trip."""
    limits = {action.name: action.limits for action in app_manager.actions.all() if action.limits}

    def resolve(view_args: Mapping[str, Any], principal: Principal | None) -> list[Bucket]:
        name = str(view_args.get("name", ""))
        if name not in limits:
            return []
        client = app_manager.rate_limiter.ip_identifier(request.remote_addr)
        level, identifier = caller_level(principal, client)
        return [app_manager.rate_limiter.bucket(level, identifier, limits[name], f"action:{name}")]

    return resolve


def authenticate(
    actions: ActionManager, authenticators: Mapping[str, Authenticator], endpoint: str | None
) -> None:
    """The request gate: authenticate the caller of an action route as described above."""
    if endpoint not in (INDEX_ENDPOINT, EXECUTE_ENDPOINT) or request.method == "OPTIONS":
        return
    if endpoint == EXECUTE_ENDPOINT:
        action = actions.get((request.view_args or {})["name"])
        if action.auth != PUBLIC:
            authenticators[action.auth]()
        g.action = action
    elif "X-API-Key" in request.headers or "Authorization" in request.headers:
        authenticators[JWT_OR_API_KEY]()


class ActionInfo(BaseModel):
    name: str
    description: str
    auth: Literal["public", "jwt", "api_key", "jwt_or_api_key"]
    roles: list[str]
    scopes: list[str]
    #: The JSON Schema of the body of ``POST /actions/<name>``.
    params: dict[str, Any]
    rate_limit: str | None


class ActionList(BaseModel):
    items: list[ActionInfo]


class ActionParams(RootModel[dict[str, Any]]):
    """The params of the action (each action's schema is under ``/actions/<its name>``)."""


class ActionResult(BaseModel):
    result: Any


@bp.get("/actions")
@declare_auth(PUBLIC)  # an optional credential narrows the list (see the module docstring)
@typed(response=ActionList)
def index() -> dict[str, Any]:
    """List actions: every one without a credential, the ones the caller may call with one."""
    principal = g.get("principal")
    actions = get_app_manager().actions.all()
    if principal is not None:
        actions = [action for action in actions if action.accepts(principal)]
    return {"items": [action.describe() for action in actions]}


@bp.post("/actions/<name>")
@declare_auth(PUBLIC)  # authenticated per action by the gate (see the module docstring)
@typed(body=ActionParams, response=ActionResult, errors={404: ["ACTION_NOT_FOUND"]})
def execute(name: str, body: ActionParams) -> ActionResult:
    """Run an action with the body as its params; answers ``{"result": ...}``."""
    app_manager = get_app_manager()
    # Resolved by the gate; without a principal the executor still refuses with 401.
    action: Action = g.get("action") or app_manager.actions.get(name)
    context = ActionContext(
        principal=g.get("principal"),
        request_id=g.get("request_id"),
        action=action.name,
    )
    return ActionResult(result=app_manager.actions.execute(action, body.root, context))
