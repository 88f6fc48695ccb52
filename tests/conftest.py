"""The framework's own tests: the ``core.testing`` plugin (real MongoDB, PostgreSQL, Redis and
Vault, apps, clients, users, keys, sockets) plus the test modules under ``tests/support``."""

from __future__ import annotations

import pytest

# The leak sweep: any process of this run still alive at the end is killed and fails the run.
from tests.support.processes import pytest_configure, pytest_sessionfinish  # noqa: F401

pytest_plugins = ["core.testing.plugin"]

# Tests that need one of these (directly or through another fixture) are marked `servers`;
# `pytest -m "not servers"` is the fast, server-free part (CI runs it on the newest Python).
SERVER_FIXTURES = frozenset({"mongodb_server", "postgres_server", "redis_server", "vault_server"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.servers)


@pytest.fixture
def app_env(app_env: dict[str, str]) -> dict[str, str]:
    """The plugin's settings, with the framework's test modules loaded next to ``modules``."""
    return {**app_env, "MODULES_PACKAGES": "modules,tests.support.modules"}
