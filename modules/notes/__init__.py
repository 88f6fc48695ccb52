"""Notes: per-user notes in MongoDB, published as actions. Copy this module to start a new one.

- ``actions.yaml``: the actions (``notes.create``, ``notes.list``, ``notes.delete``), their
  auth and the JSON Schema of their params; the framework validates, authenticates and audits;
- ``handlers.py``: what each action runs, ``handler(params, context)``;
- ``store.py``: the ``notes`` collection, owned by this module; every query is scoped to the
  owner, so a user never sees or deletes another user's notes.
"""

from __future__ import annotations

from core.app_manager import AppManager
from core.module import BaseModule
from modules.notes.store import NoteStore


class NotesModule(BaseModule):
    def __init__(self, name: str, app_manager: AppManager) -> None:
        super().__init__(name, app_manager)
        app_manager.services.register("notes", NoteStore(app_manager.database.mongo))
