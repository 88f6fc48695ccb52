"""Handlers of the framework's own actions, declared in ``actions/system.yaml``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from core.managers.actions import ActionContext


def ping(params: dict[str, Any], context: ActionContext) -> dict[str, Any]:
    """``{"pong": true, "time": <now, ISO 8601 UTC>}``."""
    return {"pong": True, "time": datetime.now(UTC)}


def echo(params: dict[str, Any], context: ActionContext) -> dict[str, Any]:
    """The params, unchanged."""
    return params
