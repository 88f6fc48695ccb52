"""The notes module: its store, registered as the service named after the package."""

from __future__ import annotations

from core.module import BaseModule, ModuleHost

from .store import NAME, NoteStore


class NotesModule(BaseModule):
    def __init__(self, name: str, app_manager: ModuleHost) -> None:
        super().__init__(name, app_manager)
        app_manager.services.register(NAME, NoteStore(app_manager.database.mongo))
