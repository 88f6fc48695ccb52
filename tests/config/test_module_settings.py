"""A module's own settings: the same sources and precedence as the core settings (secret file >
Vault > environment > default), shown and masked by ``flask config show``, redacted from logs,
refused at their development default in prod."""

from __future__ import annotations

import io
import logging
import textwrap
from importlib import import_module
from pathlib import Path

import pytest

from config.loader import SettingsLoader
from config.modules import env_names
from config.settings import Settings
from core.devstack import VaultServer
from core.errors import ConfigurationError
from core.testing import AppFactory, manager_of
from modules.auth.settings import AuthSettings
from modules.rooms.settings import RoomsSettings
from tests.config.test_loader import prod_environ
from tests.config.test_vault_source import config_show
from tests.support.packages import make_modules_package, module_source

PARTNER = textwrap.dedent(
    """
    import logging

    from flask import Blueprint

    from config.modules import ModuleSettings, secret
    from core.app_manager import get_app_manager
    from core.module import BaseModule
    from pydantic import Field


    class PartnerSettings(ModuleSettings):
        base_url: str = "https://sandbox.partner.example"
        page_size: int = Field(20, ge=1, le=100)
        api_key: str = secret("dev-partner-key")
        webhook_secret: str | None = secret(None)


    bp = Blueprint("partner", __name__)


    @bp.get("/public/partner/config")
    def config():
        settings = get_app_manager().settings_of(PartnerSettings)
        return {"base_url": settings.base_url, "page_size": settings.page_size}


    @bp.get("/public/partner/leak")
    def leak():
        settings = get_app_manager().settings_of(PartnerSettings)
        logging.getLogger(__name__).warning("leaking %s", settings.api_key)
        return {}


    class Partner(BaseModule):
        blueprint = bp
        settings_model = PartnerSettings
    """
)


@pytest.fixture
def partner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """MODULES_PACKAGES naming a package with the ``partner`` module."""
    package = make_modules_package(tmp_path, monkeypatch, {"partner": PARTNER})
    return f"modules,{package}"


def test_defaults_and_environment_reach_the_module_through_create_app(
    make_app: AppFactory, partner: str
) -> None:
    app = make_app({"MODULES_PACKAGES": partner, "PARTNER_PAGE_SIZE": "50"})
    answer = app.test_client().get("/public/partner/config").get_json()
    assert answer == {"base_url": "https://sandbox.partner.example", "page_size": 50}


def test_each_source_in_its_precedence_shown_masked_by_config_show(
    make_app: AppFactory, partner: str, app_env: dict[str, str], vault_server: VaultServer
) -> None:
    path = f"partner-{app_env['MONGODB_DB']}"
    role_id, secret_id = vault_server.seed(
        {"PARTNER_API_KEY": "key-from-vault-9f8e7d", "PARTNER_BASE_URL": "https://vault.example"},
        path=path,
        role_name=path,
    )
    secrets_dir = Path(app_env["SECRETS_DIR"])
    secrets_dir.mkdir()
    (secrets_dir / "PARTNER_BASE_URL").write_text("https://file.example\n")
    environ = {
        "MODULES_PACKAGES": partner,
        "VAULT_ADDR": vault_server.addr,
        "VAULT_AUTH_METHOD": "approle",
        "VAULT_ROLE_ID": role_id,
        "VAULT_SECRET_ID": secret_id,
        "VAULT_SECRET_PATH": path,
        "PARTNER_BASE_URL": "https://env.example",
        "PARTNER_PAGE_SIZE": "7",
    }
    rows = config_show(make_app, environ)
    assert rows["PARTNER_BASE_URL"] == ("secret_file", "https://file.example")  # file > Vault
    assert rows["PARTNER_API_KEY"] == ("vault", "********")  # Vault > default
    assert rows["PARTNER_PAGE_SIZE"] == ("env", "7")
    assert rows["PARTNER_WEBHOOK_SECRET"] == ("default", "")
    assert rows["JWT_SECRET"][1] == "********"  # core settings come first, unchanged


def test_an_invalid_value_names_the_setting_and_its_source_never_the_value(
    make_app: AppFactory, partner: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        make_app({"MODULES_PACKAGES": partner, "PARTNER_PAGE_SIZE": "1000"}, start=False)
    (line,) = raised.value.problems
    assert line.startswith("PARTNER_PAGE_SIZE (from env): ")
    assert "1000" not in line


def test_prod_refuses_a_module_secret_at_its_development_default(partner: str) -> None:
    from core.managers.modules import discover, module_settings

    models = module_settings(discover(partner.split(",")))
    with pytest.raises(ConfigurationError) as raised:
        SettingsLoader(prod_environ()).load(None, modules=models)
    assert raised.value.problems == ["PARTNER_API_KEY is required in prod"]
    with pytest.raises(ConfigurationError) as raised:
        SettingsLoader(prod_environ(PARTNER_API_KEY="dev-partner-key")).load(None, modules=models)
    assert raised.value.problems == [
        "PARTNER_API_KEY is the development default; set a real secret"
    ]
    loaded = SettingsLoader(prod_environ(PARTNER_API_KEY="a-real-partner-key")).load(
        None, modules=models
    )
    assert loaded.modules["partner"].source_of("api_key") == "env"


def test_a_module_setting_cannot_shadow_a_core_setting(
    make_app: AppFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = """
    from config.modules import ModuleSettings

    class Shadow(ModuleSettings):
        secret: str = "x"

    settings_model = Shadow
    """
    source = module_source(body=body)
    package = make_modules_package(tmp_path, monkeypatch, {"jwt": source})
    with pytest.raises(ConfigurationError) as raised:
        make_app({"MODULES_PACKAGES": package}, start=False)
    assert raised.value.problems == ["JWT_SECRET (module 'jwt') is also a core setting"]


def test_a_disabled_module_has_no_settings(make_app: AppFactory, partner: str) -> None:
    app = make_app({"MODULES_PACKAGES": partner, "MODULES_DISABLED": "partner"}, start=False)
    assert "partner" not in manager_of(app).loaded.modules
    model = import_module(f"{partner.split(',')[1]}.partner").PartnerSettings
    with pytest.raises(LookupError, match="PartnerSettings is not the settings_model"):
        manager_of(app).settings_of(model)


def test_a_module_secret_is_redacted_from_logs(make_app: AppFactory, partner: str) -> None:
    app = make_app({"MODULES_PACKAGES": partner, "PARTNER_API_KEY": "partner-key-5c4b3a"})
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "python-base-04")
    assert isinstance(handler, logging.StreamHandler)
    output = io.StringIO()
    previous = handler.setStream(output)
    try:
        assert app.test_client().get("/public/partner/leak").status_code == 200
    finally:
        handler.setStream(previous)
    assert "leaking [REDACTED]" in output.getvalue()
    assert "partner-key-5c4b3a" not in output.getvalue()


def named_settings(**fields: str) -> str:
    """A module whose settings model has ``fields`` (name -> declaration)."""
    lines = "".join(f"    {name}: {declaration}\n" for name, declaration in fields.items())
    return (
        "from config.modules import ModuleSettings, secret, setting\n"
        "from core.module import BaseModule\n\n\n"
        f"class Named(ModuleSettings):\n{lines}\n\n"
        "class Module(BaseModule):\n    settings_model = Named\n"
    )


def test_a_field_may_keep_an_env_name_of_its_own(
    make_app: AppFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``env=`` names a setting outside the module's prefix in every source: config show
    lists it under that name, an invalid value is reported under it, the prefixed name is not
    a setting at all."""
    package = make_modules_package(
        tmp_path,
        monkeypatch,
        {
            "legacy": named_settings(
                max_tries='int = setting(5, env="LEGACY_MAX_TRIES", ge=1)',
                token='str | None = secret(None, env="LEGACY_TOKEN")',
                page_size="int = 20",
            )
        },
    )
    environ = {
        "MODULES_PACKAGES": package,
        "LEGACY_MAX_TRIES": "7",
        "LEGACY_TOKEN": "t0ken-4f3e",
        "LEGACY_LEGACY_MAX_TRIES": "99",
    }
    rows = config_show(make_app, environ)
    assert rows["LEGACY_MAX_TRIES"] == ("env", "7")
    assert rows["LEGACY_TOKEN"] == ("env", "********")
    assert rows["LEGACY_PAGE_SIZE"] == ("default", "20")  # the others keep the prefix
    assert "LEGACY_LEGACY_MAX_TRIES" not in rows
    with pytest.raises(ConfigurationError) as raised:
        make_app({**environ, "LEGACY_MAX_TRIES": "0"}, start=False)
    (line,) = raised.value.problems
    assert line.startswith("LEGACY_MAX_TRIES (from env): ")


def test_an_explicit_env_name_is_refused_when_taken_or_malformed(
    make_app: AppFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = make_modules_package(
        tmp_path,
        monkeypatch,
        {
            "first": named_settings(limit='str = setting("1/second", env="RATE_LIMIT_IP")'),
            "second": named_settings(size='int = setting(1, env="SHARED_SIZE")'),
            "third": named_settings(size='int = setting(1, env="SHARED_SIZE")'),
            "fourth": named_settings(size='int = setting(1, env="lower-case")'),
        },
    )
    with pytest.raises(ConfigurationError) as raised:
        make_app({"MODULES_PACKAGES": package}, start=False)
    assert raised.value.problems == [
        "RATE_LIMIT_IP (module 'first') is also a core setting",
        "'lower-case' (module 'fourth', field 'size') is not a setting name: use upper snake case",
        "SHARED_SIZE (module 'third') is also module 'second'",
    ]


def test_the_auth_modules_settings_keep_their_public_names(make_app: AppFactory) -> None:
    """shared/API.md names them; moving them into the auth module did not rename them."""
    assert set(env_names("auth", AuthSettings).values()) == {
        "LOGIN_MAX_FAILURES",
        "LOGIN_LOCKOUT_SECONDS",
        "LOGIN_LOCK_SECONDS",
        "LOGIN_IP_MAX_FAILURES",
        "LOGIN_IP_WINDOW_SECONDS",
        "LOGIN_DEVICE_TTL",
        "ARGON2_TIME_COST",
        "ARGON2_MEMORY_COST",
        "ARGON2_PARALLELISM",
        "RATE_LIMIT_REGISTER",
        "RATE_LIMIT_LOGIN",
        "RATE_LIMIT_REFRESH",
    }
    rows = config_show(make_app, {"LOGIN_MAX_FAILURES": "3"})
    assert rows["LOGIN_MAX_FAILURES"] == ("env", "3")
    assert not [name for name in rows if name.startswith("AUTH_")]
    rows = config_show(make_app, {"MODULES_DISABLED": "auth"})
    assert "LOGIN_MAX_FAILURES" not in rows


def test_the_rooms_modules_settings_keep_their_core_names(make_app: AppFactory) -> None:
    """They were core settings before the chat rooms became a module (decision 89): the
    module reads them under the same names, and only while it is enabled."""
    names = {"SOCKETIO_MAX_ROOMS_PER_OWNER", "SOCKETIO_MAX_ROOM_MEMBERS", "SOCKETIO_LIST_ROOMS_MAX"}
    assert set(env_names("rooms", RoomsSettings).values()) == names
    assert not names & set(Settings.env_names())
    rows = config_show(make_app, {"SOCKETIO_LIST_ROOMS_MAX": "7"})
    assert rows["SOCKETIO_LIST_ROOMS_MAX"] == ("env", "7")
    assert rows["SOCKETIO_MAX_ROOMS_PER_OWNER"] == ("default", "20")
    assert not [name for name in rows if name.startswith("ROOMS_")]
    with pytest.raises(ConfigurationError) as raised:
        make_app({"SOCKETIO_LIST_ROOMS_MAX": "0"}, start=False)
    (line,) = raised.value.problems
    assert line.startswith("SOCKETIO_LIST_ROOMS_MAX (from env): ")
    # Disabled, the module's settings are not loaded: neither shown nor validated.
    app = make_app({"MODULES_DISABLED": "rooms", "SOCKETIO_LIST_ROOMS_MAX": "0"}, start=False)
    with pytest.raises(LookupError, match="RoomsSettings is not the settings_model"):
        manager_of(app).settings_of(RoomsSettings)
    rows = config_show(make_app, {"MODULES_DISABLED": "rooms"})
    assert not names & set(rows)
    assert rows["SOCKETIO_ROOM_EMPTY_TTL"] == ("default", "3600")  # the framework's, kept
