"""The webchat module: its settings and when its routes are served."""

from __future__ import annotations

from flask import Flask

from config.modules import ModuleSettings
from core.module import BaseModule
from modules.webchat.routes import bp


class WebchatSettings(ModuleSettings):
    #: Serve the page (None: on outside prod, off in prod).
    enabled: bool | None = None


class WebchatModule(BaseModule):
    settings_model = WebchatSettings

    def register_routes(self, app: Flask) -> None:
        enabled = self.app_manager.settings_of(WebchatSettings).enabled
        if enabled if enabled is not None else not self.app_manager.settings.is_prod:
            app.register_blueprint(bp)
