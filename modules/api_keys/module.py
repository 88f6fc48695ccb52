"""The api_keys module: the HTTP and CLI surface of the ApiKeyManager."""

from __future__ import annotations

from core.module import BaseModule
from modules.api_keys.cli import api_keys_cli
from modules.api_keys.routes import bp


class ApiKeysModule(BaseModule):
    blueprint = bp
    commands = (api_keys_cli,)
