"""Testing a module against real servers: the pytest plugin and its helpers.

``pytest_plugins = ["core.testing.plugin"]`` in the top ``conftest.py`` gives the fixtures
listed in :mod:`core.testing.plugin`; the helpers below make users, tokens and API keys
through the public HTTP API, check problem responses, and drive real Socket.IO clients.
"""

from __future__ import annotations

from core.testing.identity import (
    PASSWORD,
    admin_tokens,
    bearer,
    create_api_key,
    expired_access_token,
    login,
    refused_tokens,
    register,
    user_with_tokens,
)
from core.testing.plugin import TEST_ENCRYPTION_KEY, TEST_JWT_SECRET, AppFactory
from core.testing.problems import problem
from core.testing.sockets import Client, serving

__all__ = [
    "PASSWORD",
    "TEST_ENCRYPTION_KEY",
    "TEST_JWT_SECRET",
    "AppFactory",
    "Client",
    "admin_tokens",
    "bearer",
    "create_api_key",
    "expired_access_token",
    "login",
    "problem",
    "refused_tokens",
    "register",
    "serving",
    "user_with_tokens",
]
