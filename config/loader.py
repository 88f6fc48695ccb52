"""Resolve every setting from its sources, highest precedence first.

1. a secret file named after the setting in ``SECRETS_DIR`` (Kubernetes mounts them);
2. the key of the same name in the Vault KV v2 secret at ``VAULT_SECRET_PATH``;
3. the environment variable;
4. the default (development only for anything secret or required in production).

Loading happens in two steps because Vault has to be reached with settings that Vault itself
cannot provide: :meth:`SettingsLoader.bootstrap` resolves everything without Vault, the caller
logs in to Vault with those values, and :meth:`SettingsLoader.load` resolves again with the
values read from Vault. The loader does no network I/O itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from config.settings import DEV_ENCRYPTION_KEY, DEV_JWT_SECRET, Settings
from core.errors import ConfigurationError

SECRET_FILE = "secret_file"  # noqa: S105 - a source name, not a secret
VAULT = "vault"
ENV = "env"
DEFAULT = "default"

_DEV_SECRETS = {"jwt_secret": DEV_JWT_SECRET, "encryption_key": DEV_ENCRYPTION_KEY}
_MIN_JWT_SECRET_BYTES = 32


@dataclass(frozen=True)
class LoadedSettings:
    """Settings plus where each value came from (never the value itself)."""

    settings: Settings
    sources: dict[str, str] = field(default_factory=dict)
    ignored_vault_keys: tuple[str, ...] = ()

    def source_of(self, name: str) -> str:
        return self.sources.get(name.lower(), DEFAULT)


class SettingsLoader:
    """Collects raw values per setting from secret files, Vault and the environment."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = dict(os.environ if environ is None else environ)

    def bootstrap(self) -> LoadedSettings:
        """Everything except Vault: enough to know whether and how to reach Vault."""
        return self.load(vault_values=None, final=False)

    def load(self, vault_values: Mapping[str, Any] | None, *, final: bool = True) -> LoadedSettings:
        """Resolve every setting; ``final`` also applies the production checks."""
        env = {name: self._environ[name] for name in Settings.env_names() if name in self._environ}
        secrets_dir = Path(env.get("SECRETS_DIR", Settings.model_fields["secrets_dir"].default))
        files = _read_secret_files(secrets_dir)

        raw: dict[str, Any] = {}
        sources: dict[str, str] = {}
        ignored: list[str] = []
        for layer, values in ((ENV, env), (VAULT, vault_values or {}), (SECRET_FILE, files)):
            for env_name, value in values.items():
                name = env_name.lower()
                if name not in Settings.model_fields:
                    continue
                if layer == VAULT and Settings.field_flag(name, "bootstrap"):
                    ignored.append(env_name)
                    continue
                raw[name] = value
                sources[name] = layer

        try:
            settings = Settings(**raw)
        except ValidationError as exc:
            raise ConfigurationError(_describe(exc, sources)) from None
        loaded = LoadedSettings(settings, sources, tuple(sorted(ignored)))
        problems = production_problems(loaded) if final and settings.is_prod else []
        if problems:
            raise ConfigurationError(problems)
        return loaded


def _read_secret_files(directory: Path) -> dict[str, str]:
    if not directory.is_dir():
        return {}
    found = {}
    for env_name in Settings.env_names():
        path = directory / env_name
        if path.is_file():
            found[env_name] = path.read_text(encoding="utf-8").strip()
    return found


def _describe(exc: ValidationError, sources: Mapping[str, str]) -> list[str]:
    """One line per invalid setting, naming its source but never echoing its value."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        name = str(error["loc"][0]) if error["loc"] else "?"
        source = sources.get(name, DEFAULT)
        problems.append(f"{name.upper()} (from {source}): {error['msg']}")
    return problems


def production_problems(loaded: LoadedSettings) -> list[str]:
    """Everything that makes these settings unfit for production, all at once."""
    settings = loaded.settings
    problems = []
    for name in Settings.model_fields:
        if Settings.field_flag(name, "prod_required") and loaded.source_of(name) == DEFAULT:
            problems.append(f"{name.upper()} is required in prod")
    for name, dev_value in _DEV_SECRETS.items():
        if loaded.source_of(name) != DEFAULT and getattr(settings, name) == dev_value:
            problems.append(f"{name.upper()} is the development default; set a real secret")
    if len(settings.jwt_secret.encode()) < _MIN_JWT_SECRET_BYTES:
        problems.append(f"JWT_SECRET must be at least {_MIN_JWT_SECRET_BYTES} bytes in prod")
    if "*" in settings.cors_origins:
        problems.append("CORS_ORIGINS must list origins in prod, not '*'")
    problems.extend(vault_problems(settings))
    return problems


def vault_problems(settings: Settings) -> list[str]:
    """The credentials each Vault auth method needs, when Vault is configured."""
    if not settings.vault_addr:
        return []
    needed = {
        "token": ["vault_token"],
        "approle": ["vault_role_id", "vault_secret_id"],
        "kubernetes": ["vault_kubernetes_role"],
    }[settings.vault_auth_method]
    return [
        f"{name.upper()} is required for VAULT_AUTH_METHOD={settings.vault_auth_method}"
        for name in needed
        if not getattr(settings, name)
    ]
