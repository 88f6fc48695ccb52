"""The admin module: administration routes for operators."""

from __future__ import annotations

from core.module import BaseModule
from modules.admin.routes import bp


class AdminModule(BaseModule):
    blueprint = bp
