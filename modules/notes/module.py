"""The notes module: its store, registered as the service named after the package."""

from __future__ import annotations

from core.app_manager import AppManager
from core.module import BaseModule

from .store import NAME, NoteStore


class NotesModule(BaseModule):
    def __init__(self, name: str, app_manager: AppManager) -> None:
        super().__init__(name, app_manager)
        app_manager.services.register(NAME, NoteStore(app_manager.database.mongo))
