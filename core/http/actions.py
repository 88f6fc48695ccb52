"""``GET /actions`` and ``POST /actions/<name>``: the HTTP surface of the ActionManager.

``POST /actions/<name>`` stands for the action it names: the admission layer admits each call
with that action's own endpoint (:attr:`Action.endpoint`: its auth, roles, scopes and
``rate_limit``), before the body is read, so an unknown action is 404 ``ACTION_NOT_FOUND``
(counted at the ``ip`` level like any guess) and a missing or bad credential 401, exactly as
for a route.

``GET /actions`` takes an optional credential (policy ``optional``): with one (bearer token or
``X-API-Key``; a bad one is 401) it lists only what that caller may call; without one it lists
every action with its auth requirements.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from flask import Flask, g
from pydantic import BaseModel

from core.app_manager import AppManager, get_app_manager
from core.edge.endpoint import Endpoint
from core.edge.principal import OPTIONAL, PUBLIC
from core.http.routes import Routes
from core.http.routing import Routing
from core.http.typed import JsonObject
from core.managers.actions import ActionContext

bp = Routes("actions", __name__)
INDEX_ENDPOINT = "actions.index"
EXECUTE_ENDPOINT = "actions.execute"


def install(app: Flask, app_manager: AppManager, routing: Routing) -> None:
    """Register the routes; ``POST /actions/<name>`` is admitted as the action named."""
    app.register_blueprint(bp)
    actions = app_manager.actions

    def resolve(view_args: Mapping[str, Any]) -> Endpoint:
        return actions.get(str(view_args.get("name", ""))).endpoint

    routing.resolvers[EXECUTE_ENDPOINT] = resolve


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


class ActionParams(JsonObject):
    """The params of the action (each action's schema is under ``/actions/<its name>``),
    validated once, by the executor, against that schema."""


class ActionResult(BaseModel):
    result: Any


@bp.get("/actions", auth=OPTIONAL, response=ActionList)
def index() -> dict[str, Any]:
    """List actions: every one without a credential, the ones the caller may call with one."""
    principal = g.get("principal")
    actions = get_app_manager().actions.all()
    if principal is not None:
        actions = [action for action in actions if action.accepts(principal)]
    return {"items": [action.describe() for action in actions]}


@bp.post(
    "/actions/<name>",
    auth=PUBLIC,  # admitted as the action named (see the module docstring)
    body=ActionParams,
    response=ActionResult,
    errors={"ACTION_NOT_FOUND": 404},
)
def execute(name: str, body: dict[str, Any]) -> ActionResult:
    """Run an action with the body as its params; answers ``{"result": ...}``."""
    app_manager = get_app_manager()
    action = app_manager.actions.get(name)
    context = ActionContext(
        principal=g.get("principal"),
        request_id=g.get("request_id"),
        action=action.name,
    )
    return ActionResult(result=app_manager.actions.execute(action, body, context))
