"""The handlers of ``actions.yaml``: ``handler(params, context)`` with params already validated
against the action's schema (top-level defaults filled in) and the caller authenticated."""

from __future__ import annotations

from typing import Any

from core.app_manager import get_app_manager
from core.managers.actions import ActionContext

from .store import NAME, NoteStore


def _notes() -> NoteStore:
    return get_app_manager().services.get(NAME, NoteStore)


def create(params: dict[str, Any], context: ActionContext) -> dict[str, Any]:
    owner = context.require_principal().id
    return _notes().create(owner, params["title"], params["body"])


def list_notes(params: dict[str, Any], context: ActionContext) -> dict[str, Any]:
    owner = context.require_principal().id
    return _notes().page_for(owner, params["limit"], params.get("cursor")).to_dict()


def delete(params: dict[str, Any], context: ActionContext) -> dict[str, Any]:
    _notes().delete(context.require_principal().id, params["id"])
    return {"deleted": True}
