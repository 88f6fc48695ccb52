"""Settings of feature modules: a pydantic model per module, resolved like the core settings.

A module declares ``settings_model = TodosSettings`` (a :class:`ModuleSettings`). Each field
``page_size`` of module ``todos`` is the setting ``TODOS_PAGE_SIZE``: read from the secret
file ``SECRETS_DIR/TODOS_PAGE_SIZE``, the key ``TODOS_PAGE_SIZE`` of the Vault KV secret, the
environment variable, or the default, in that order (config/loader.py). The field helpers of
config/settings.py apply: :func:`~config.settings.secret` masks and redacts a value and, with a
development default, makes ``prod`` refuse to start until a real source provides it.

A field may keep a name of its own instead of ``<MODULE>_<FIELD>``: ``env="LOGIN_MAX_FAILURES"``
on :func:`setting`, :func:`secret` or :func:`required_in_prod`. That is for names that are
already a public contract (the auth module's ``LOGIN_*``, ``ARGON2_*`` and
``RATE_LIMIT_LOGIN``... predate module settings); a new setting takes the module's prefix. The
name must be upper snake case, and one that equals a core setting or another module's stops
start-up, like any collision.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field

from config.settings import SettingsModel, required_in_prod, secret

__all__ = [
    "ModuleSettings",
    "env_name",
    "env_names",
    "required_in_prod",
    "secret",
    "setting",
]

#: What an explicit ``env=`` name may be.
ENV_NAME = re.compile(r"[A-Z][A-Z0-9_]*")


class ModuleSettings(SettingsModel):
    """Base of a module's settings model; fields are named in lower case."""


def setting(default: Any = ..., *, env: str | None = None, **field: Any) -> Any:
    """A module setting: ``Field(default, **field)`` (constraints such as ``ge=1``), named
    ``env`` in every source when given, ``<MODULE>_<FIELD>`` otherwise."""
    return Field(default, json_schema_extra={"env": env} if env else None, **field)


def env_name(module: str, model: type[ModuleSettings], field: str) -> str:
    """The setting's name: ``todos`` + ``page_size`` -> ``TODOS_PAGE_SIZE``, or the field's own
    ``env=`` name."""
    extra = model.model_fields[field].json_schema_extra
    explicit = extra.get("env") if isinstance(extra, dict) else None
    return str(explicit) if explicit else f"{module}_{field}".upper()


def env_names(module: str, model: type[ModuleSettings]) -> dict[str, str]:
    """Field -> setting name, for every field of ``model`` as module ``module``'s settings."""
    return {field: env_name(module, model, field) for field in model.model_fields}
