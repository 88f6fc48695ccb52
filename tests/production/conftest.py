"""Fixtures for the production tests: apps with the ``metered`` test module."""

from __future__ import annotations

import pytest

MODULES = "modules,tests.support.modules,tests.production.modules"


@pytest.fixture
def app_env(app_env: dict[str, str]) -> dict[str, str]:
    return {**app_env, "MODULES_PACKAGES": MODULES}
