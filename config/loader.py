"""Resolve every setting from its sources, highest precedence first.

1. a secret file named after the setting in ``SECRETS_DIR`` (Kubernetes mounts them);
2. the key of the same name in the Vault KV v2 secret at ``VAULT_SECRET_PATH``;
3. the environment variable;
4. the default (development only for anything secret or required in production); outside
   prod, ``JWT_SECRET`` and ``ENCRYPTION_KEY`` are generated instead (config/generated.py):
   no secret printed in the repository is ever a default, and every value that ever was one
   is refused in every environment.

Feature modules' settings (config/modules.py) resolve through the same sources, named
``<MODULE>_<FIELD>`` (or a field's own ``env=`` name); they are loaded with the core settings
and shown, masked and checked for production the same way.

Loading happens in two steps because Vault has to be reached with settings that Vault itself
cannot provide: :meth:`SettingsLoader.bootstrap` resolves everything without Vault, the caller
logs in to Vault with those values, and :meth:`SettingsLoader.load` resolves again with the
values read from Vault. The loader does no network I/O itself.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from config.dev_stack import DEFAULT_DEVDATA_DIR
from config.generated import (
    GENERATED as GENERATED_SECRETS,
)
from config.generated import (
    development_secrets,
    is_published,
    process_secrets,
)
from config.modules import ENV_NAME, ModuleSettings, env_name, env_names
from config.settings import Settings, SettingsModel
from core.errors import ConfigurationError

SECRET_FILE = "secret_file"  # noqa: S105 - a source name, not a secret
VAULT = "vault"
ENV = "env"
DEFAULT = "default"
#: Generated outside prod (config/generated.py): kept under DEVDATA_DIR (dev), or random for
#: the process (test).
DEVDATA = "devdata"
GENERATED = "generated"

_MIN_JWT_SECRET_BYTES = 32
_MIN_METRICS_TOKEN_BYTES = 32
M = TypeVar("M", bound=ModuleSettings)


@dataclass(frozen=True)
class LoadedModuleSettings:
    """One module's settings plus where each value came from."""

    module: str
    settings: ModuleSettings
    sources: dict[str, str] = field(default_factory=dict)

    def source_of(self, name: str) -> str:
        return self.sources.get(name, DEFAULT)


@dataclass(frozen=True)
class LoadedSettings:
    """Settings plus where each value came from (never the value itself)."""

    settings: Settings
    sources: dict[str, str] = field(default_factory=dict)
    ignored_vault_keys: tuple[str, ...] = ()
    #: Module name -> its settings, for the enabled modules that declare a settings model.
    modules: dict[str, LoadedModuleSettings] = field(default_factory=dict)

    def source_of(self, name: str) -> str:
        return self.sources.get(name.lower(), DEFAULT)

    def settings_of(self, model: type[M]) -> M:
        """The resolved instance of a module's settings model."""
        for loaded in self.modules.values():
            if isinstance(loaded.settings, model):
                return loaded.settings
        raise LookupError(
            f"{model.__name__} is not the settings_model of an enabled module "
            f"(modules with settings: {', '.join(sorted(self.modules)) or 'none'})"
        )

    def entries(self) -> Iterator[tuple[str, SettingsModel, str, str]]:
        """``(env name, model instance, field, source)`` of every setting, core first."""
        for name in Settings.model_fields:
            yield name.upper(), self.settings, name, self.source_of(name)
        for module, loaded in self.modules.items():
            for name, setting in env_names(module, type(loaded.settings)).items():
                yield setting, loaded.settings, name, loaded.source_of(name)

    def value_of(self, env: str) -> Any:
        """The value of the setting whose public name is ``env`` (``RATE_LIMIT_LOGIN``,
        ``SHELF_CREATE_RATE_LIMIT``); None when there is no such setting."""
        for name, model, field_name, _ in self.entries():
            if name == env:
                return getattr(model, field_name)
        return None

    def secret_values(self) -> list[str]:
        """Every secret value, core and modules', for log redaction."""
        values = self.settings.secret_values()
        for loaded in self.modules.values():
            values.extend(loaded.settings.secret_values())
        return values


class SettingsLoader:
    """Collects raw values per setting from secret files, Vault and the environment."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = dict(os.environ if environ is None else environ)

    def bootstrap(self) -> LoadedSettings:
        """Everything except Vault and modules: enough to know whether and how to reach Vault
        and which modules to load."""
        return self.load(vault_values=None, final=False)

    def load(
        self,
        vault_values: Mapping[str, Any] | None,
        *,
        final: bool = True,
        modules: Mapping[str, type[ModuleSettings]] | None = None,
    ) -> LoadedSettings:
        """Resolve every setting (core, then each module's ``modules[name]`` model); ``final``
        also applies the production checks."""
        fields: dict[str, tuple[str | None, str]] = {
            n: (None, n.lower()) for n in Settings.env_names()
        }
        problems: list[str] = []
        for module, model in (modules or {}).items():
            for name, setting in env_names(module, model).items():
                if not ENV_NAME.fullmatch(setting):
                    problems.append(
                        f"{setting!r} (module {module!r}, field {name!r}) is not a setting "
                        "name: use upper snake case"
                    )
                    continue
                if setting in fields:
                    owner = fields[setting][0]
                    taken = f"module {owner!r}" if owner else "a core setting"
                    problems.append(f"{setting} (module {module!r}) is also {taken}")
                fields[setting] = (module, name)
        if problems:
            raise ConfigurationError(problems)

        env = {name: self._environ[name] for name in fields if name in self._environ}
        default_dir = Settings.model_fields["secrets_dir"].default
        files = _read_secret_files(Path(env.get("SECRETS_DIR", default_dir)), list(fields))
        raw: dict[str | None, dict[str, Any]] = {None: {}, **{m: {} for m in modules or {}}}
        sources: dict[str | None, dict[str, str]] = {owner: {} for owner in raw}
        ignored: list[str] = []
        for layer, values in ((ENV, env), (VAULT, vault_values or {}), (SECRET_FILE, files)):
            for setting, value in values.items():
                if setting not in fields:
                    continue
                owner, name = fields[setting]
                if layer == VAULT and owner is None and Settings.field_flag(name, "bootstrap"):
                    ignored.append(setting)
                    continue
                raw[owner][name] = value
                sources[owner][name] = layer

        if final:
            self._generate_missing(raw[None], sources[None])
        try:
            settings = Settings(**raw[None])
        except ValidationError as exc:
            problems.extend(_describe(exc, sources[None], lambda name: name.upper()))
        loaded_modules = {}
        for module, model in (modules or {}).items():
            try:
                instance = model(**raw[module])
            except ValidationError as exc:
                problems.extend(_describe(exc, sources[module], partial(env_name, module, model)))
                continue
            loaded_modules[module] = LoadedModuleSettings(module, instance, sources[module])
        if problems:
            raise ConfigurationError(problems)
        loaded = LoadedSettings(settings, sources[None], tuple(sorted(ignored)), loaded_modules)
        problems = []
        if final:
            problems = published_problems(loaded)
            problems += (production_problems if settings.is_prod else exposure_problems)(loaded)
        if problems:
            raise ConfigurationError(problems)
        return loaded

    def _generate_missing(self, raw: dict[str, Any], sources: dict[str, str]) -> None:
        """Outside prod, the :data:`config.GENERATED_SECRETS` secrets no source set (an
        empty value counts as unset): kept under ``DEVDATA_DIR`` in dev, random in test."""
        missing = [name for name in GENERATED_SECRETS if not raw.get(name.lower())]
        environment = raw.get("app_env", Settings.model_fields["app_env"].default)
        if not missing or environment not in ("dev", "test"):
            return
        if environment == "dev":
            root = Path(self._environ.get("DEVDATA_DIR") or DEFAULT_DEVDATA_DIR)
            values, source = development_secrets(root), DEVDATA
        else:
            values, source = process_secrets(), GENERATED
        for name in missing:
            raw[name.lower()] = values[name]
            sources[name.lower()] = source


def _read_secret_files(directory: Path, names: list[str]) -> dict[str, str]:
    if not directory.is_dir():
        return {}
    found = {}
    for name in names:
        path = directory / name
        if path.is_file():
            found[name] = path.read_text(encoding="utf-8").strip()
    return found


def _describe(
    exc: ValidationError, sources: Mapping[str, str], setting: Callable[[str], str]
) -> list[str]:
    """One line per invalid setting, naming its source but never echoing its value."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        name = str(error["loc"][0]) if error["loc"] else "?"
        source = sources.get(name, DEFAULT)
        problems.append(f"{setting(name)} (from {source}): {error['msg']}")
    return problems


def development_secret(model: SettingsModel, name: str) -> Any:
    """The development default of a secret setting (published in the repository), or None
    when ``name`` is not a secret or has no default."""
    if not model.field_flag(name, "secret"):
        return None
    default = type(model).model_fields[name].get_default(call_default_factory=True)
    return default or None


def production_problems(loaded: LoadedSettings) -> list[str]:
    """Everything that makes these settings unfit for production, all at once.

    A setting flagged ``prod_required``, and a secret with a development default, must come
    from a real source, and not be set to that default either.
    """
    settings = loaded.settings
    problems = []
    for setting, model, name, source in loaded.entries():
        default = development_secret(model, name)
        dev_secret = default is not None
        if not (dev_secret or model.field_flag(name, "prod_required")):
            continue
        if source == DEFAULT or getattr(model, name) in ("", None):
            problems.append(f"{setting} is required in prod")
        elif dev_secret and getattr(model, name) == default:
            problems.append(f"{setting} is the development default; set a real secret")
    if settings.jwt_secret and len(settings.jwt_secret.encode()) < _MIN_JWT_SECRET_BYTES:
        problems.append(f"JWT_SECRET must be at least {_MIN_JWT_SECRET_BYTES} bytes in prod")
    previous = settings.jwt_previous_secrets
    weak = [s for s in previous if len(s.key.encode()) < _MIN_JWT_SECRET_BYTES]
    if weak:
        problems.append(
            f"JWT_PREVIOUS_SECRETS: every secret must be at least {_MIN_JWT_SECRET_BYTES} "
            f"bytes in prod ({len(weak)} shorter)"
        )
    if settings.metrics_token is not None and len(settings.metrics_token.encode()) < (
        _MIN_METRICS_TOKEN_BYTES
    ):
        problems.append(
            f"METRICS_TOKEN must be at least {_MIN_METRICS_TOKEN_BYTES} bytes in prod "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    if settings.metrics_port is not None and not settings.metrics_token:
        problems.append(
            "METRICS_TOKEN is required in prod with METRICS_PORT: the metrics port is "
            "reachable inside the cluster, so it needs the token too"
        )
    if "*" in settings.cors_origins:
        problems.append("CORS_ORIGINS must list origins in prod, not '*'")
    problems.extend(vault_problems(settings))
    return problems


def published_problems(loaded: LoadedSettings) -> list[str]:
    """In every environment: a secret setting holding a value this repository ever printed
    (config/generated.py, ``PUBLISHED_SECRET_DIGESTS``). Anyone can mint an admin token with a
    published JWT secret, whatever the address or environment."""
    problems = []
    for setting, model, name, _ in loaded.entries():
        if not model.field_flag(name, "secret"):
            continue
        value = getattr(model, name)
        values = [getattr(v, "key", v) for v in (value if isinstance(value, list) else [value])]
        if any(isinstance(v, str) and v and is_published(v) for v in values):
            problems.append(
                f"{setting} holds a value published in this repository; set a secret of your own"
            )
    return problems


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a bind address) is reachable from this machine only."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def exposure_problems(loaded: LoadedSettings) -> list[str]:
    """Outside prod: a module's secret at its development default (printed in its code) only
    serves a loopback address. The framework's own secrets have no default to serve."""
    settings = loaded.settings
    if is_loopback(settings.host):
        return []
    published = [
        setting
        for setting, model, name, _ in loaded.entries()
        if (default := development_secret(model, name)) is not None
        and getattr(model, name) == default
    ]
    return [
        f"{setting} is the development default published in the repository and HOST="
        f"{settings.host} is not a loopback address; set a real secret or bind 127.0.0.1"
        for setting in published
    ]


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
