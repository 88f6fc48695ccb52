"""Testing a module against real servers: the pytest plugin and its helpers.

``pytest_plugins = ["core.testing.plugin"]`` in the top ``conftest.py`` gives the fixtures
listed in :mod:`core.testing.plugin` (and those of every enabled module's ``testing.py``); the
helpers below check problem responses, make tokens for refusal tests and drive real
Socket.IO clients. Users and API keys come from the modules that own them
(``modules.auth.testing``, ``modules.api_keys.testing``).
"""

from __future__ import annotations

from core.testing.plugin import (
    TEST_ENCRYPTION_KEY,
    TEST_JWT_SECRET,
    AppFactory,
    captured_log,
    manager_of,
)
from core.testing.problems import problem
from core.testing.sockets import Client, serving
from core.testing.tokens import bearer, expired_access_token, refused_tokens

__all__ = [
    "TEST_ENCRYPTION_KEY",
    "TEST_JWT_SECRET",
    "AppFactory",
    "Client",
    "bearer",
    "captured_log",
    "expired_access_token",
    "manager_of",
    "problem",
    "refused_tokens",
    "serving",
]
