"""API keys for service-to-service calls (docs/auth.md, "API keys"): admin routes, whoami and CLI.

Keys are managed by the ApiKeyManager (``app_manager.api_keys``); this module is its HTTP
(:mod:`.routes`) and CLI (:mod:`.cli`) surface.
"""

from modules.api_keys.module import ApiKeysModule

__all__ = ["ApiKeysModule"]
