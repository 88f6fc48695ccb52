"""The settings documentation cannot drift from the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from config.modules import env_name, env_names
from config.settings import Settings
from core.managers.modules import discover, module_settings

# Every setting of the project, its modules' included (tests/core/test_scaffold.py).
pytestmark = pytest.mark.project_wide

ROOT = Path(__file__).resolve().parent.parent.parent


def setting_names() -> set[str]:
    """Every core setting and every setting of the project's modules (``modules/``)."""
    names = set(Settings.env_names())
    for module, model in module_settings(discover(Settings().modules_packages)).items():
        names.update(env_names(module, model).values())
    return names


def secret_names() -> set[str]:
    secret = {name.upper() for name in Settings.model_fields if Settings.field_flag(name, "secret")}
    for module, model in module_settings(discover(Settings().modules_packages)).items():
        secret.update(
            env_name(module, model, name)
            for name in model.model_fields
            if model.field_flag(name, "secret")
        )
    return secret


def documented_names() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))


def test_env_example_lists_every_setting() -> None:
    missing = setting_names() - documented_names()
    assert not missing, f"add to .env.example: {sorted(missing)}"


def test_env_example_lists_nothing_that_does_not_exist() -> None:
    dev_stack = {
        "DEV_MONGODB_PORT",
        "DEV_POSTGRES_PORT",
        "DEV_REDIS_PORT",
        "DEV_VAULT_PORT",
        "DEVDATA_DIR",
    }
    unknown = documented_names() - setting_names() - dev_stack
    assert not unknown, f"not a setting: {sorted(unknown)}"


def test_env_example_holds_no_secret_values() -> None:
    text = (ROOT / ".env.example").read_text()
    for name in secret_names():
        assert re.search(rf"^{name}=\s*(#|$)", text, flags=re.MULTILINE), name
