"""Notes: per-user notes in MongoDB, published as actions. Copy this module to start a new one
(or scaffold one with ``flask --app app module new NAME``).

- ``actions.yaml``: the actions (``.create``, ``.list``, ``.delete``: named after this package,
  so ``notes.create`` here), their auth and the JSON Schema of their params; the framework
  validates, authenticates, rate-limits and audits;
- ``handlers.py``: what each action runs, ``handler(params, context)``;
- ``store.py``: the collection named after this package, owned by this module; every query is
  scoped to the owner, so a user never sees or deletes another user's notes.

Nothing here names the package: imports are relative and the collection, the service and the
actions take the package's name, so a copy under another name owns its own data.
"""

from __future__ import annotations

from core.app_manager import AppManager
from core.module import BaseModule

from .store import NAME, NoteStore


class NotesModule(BaseModule):
    def __init__(self, name: str, app_manager: AppManager) -> None:
        super().__init__(name, app_manager)
        app_manager.services.register(NAME, NoteStore(app_manager.database.mongo))
