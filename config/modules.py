"""Settings of feature modules: a pydantic model per module, resolved like the core settings.

A module declares ``settings_model = TodosSettings`` (a :class:`ModuleSettings`). Each field
``page_size`` of module ``todos`` is the setting ``TODOS_PAGE_SIZE``: read from the secret
file ``SECRETS_DIR/TODOS_PAGE_SIZE``, the key ``TODOS_PAGE_SIZE`` of the Vault KV secret, the
environment variable, or the default, in that order (config/loader.py). The field helpers of
config/settings.py apply: :func:`~config.settings.secret` masks and redacts a value and, with a
development default, makes ``prod`` refuse to start until a real source provides it.
"""

from __future__ import annotations

from config.settings import SettingsModel, required_in_prod, secret

__all__ = ["ModuleSettings", "env_name", "env_names", "required_in_prod", "secret"]


class ModuleSettings(SettingsModel):
    """Base of a module's settings model; fields are named in lower case."""


def env_name(module: str, field: str) -> str:
    """The setting's name: ``todos`` + ``page_size`` -> ``TODOS_PAGE_SIZE``."""
    return f"{module}_{field}".upper()


def env_names(module: str, model: type[ModuleSettings]) -> list[str]:
    return [env_name(module, field) for field in model.model_fields]
