"""Settings precedence and production refusals (pure: no servers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.loader import DEFAULT, ENV, SECRET_FILE, VAULT, SettingsLoader
from config.settings import DEV_ENCRYPTION_KEY, DEV_JWT_SECRET
from core.errors import ConfigurationError

GOOD_KEY = "dGVzdC1lbmNyeXB0aW9uLWtleS0zMi1ieXRlcy0hISE="


def test_each_source_wins_over_the_ones_below(tmp_path: Path) -> None:
    (tmp_path / "JWT_ISSUER").write_text("  from-file \n")
    environ = {
        "SECRETS_DIR": str(tmp_path),
        "JWT_ISSUER": "from-env",
        "JWT_AUDIENCE": "from-env",
        "MONGODB_DB": "from-env",
    }
    vault = {"JWT_ISSUER": "from-vault", "JWT_AUDIENCE": "from-vault"}

    loaded = SettingsLoader(environ).load(vault)

    assert loaded.settings.jwt_issuer == "from-file"  # file > vault > env
    assert loaded.source_of("JWT_ISSUER") == SECRET_FILE
    assert loaded.settings.jwt_audience == "from-vault"  # vault > env
    assert loaded.source_of("JWT_AUDIENCE") == VAULT
    assert loaded.settings.mongodb_db == "from-env"  # env > default
    assert loaded.source_of("MONGODB_DB") == ENV
    assert loaded.settings.port == 5000
    assert loaded.source_of("PORT") == DEFAULT


def test_vault_cannot_configure_how_vault_is_reached() -> None:
    loaded = SettingsLoader({}).load({"VAULT_ADDR": "http://evil", "VAULT_TOKEN": "x"})
    assert loaded.settings.vault_addr is None
    assert loaded.ignored_vault_keys == ("VAULT_ADDR", "VAULT_TOKEN")


def test_prod_lists_every_missing_setting_at_once() -> None:
    with pytest.raises(ConfigurationError) as excinfo:
        SettingsLoader({"APP_ENV": "prod"}).load(None)
    problems = "\n".join(excinfo.value.problems)
    for name in ("MONGODB_URI", "POSTGRES_DSN", "REDIS_URL", "JWT_SECRET", "ENCRYPTION_KEY"):
        assert f"{name} is required in prod" in problems
    assert len(excinfo.value.problems) == 5


def prod_environ(**overrides: str) -> dict[str, str]:
    environ = {
        "APP_ENV": "prod",
        "MONGODB_URI": "mongodb://db:27017",
        "POSTGRES_DSN": "postgresql://app:pw@pg/app",
        "REDIS_URL": "redis://redis:6379/0",
        "JWT_SECRET": "a-real-secret-that-is-long-enough-0123456789",
        "ENCRYPTION_KEY": GOOD_KEY,
    }
    environ.update(overrides)
    return environ


def test_prod_starts_with_connections_and_two_secrets() -> None:
    loaded = SettingsLoader(prod_environ()).load(None)
    assert loaded.settings.is_prod
    assert loaded.settings.effective_log_format == "json"


def test_prod_refuses_development_secrets_even_when_set_explicitly() -> None:
    environ = prod_environ(JWT_SECRET=DEV_JWT_SECRET, ENCRYPTION_KEY=DEV_ENCRYPTION_KEY)
    with pytest.raises(ConfigurationError) as excinfo:
        SettingsLoader(environ).load(None)
    assert excinfo.value.problems == [
        "JWT_SECRET is the development default; set a real secret",
        "ENCRYPTION_KEY is the development default; set a real secret",
    ]


def test_prod_refuses_short_jwt_secret_wildcard_cors_and_incomplete_vault() -> None:
    environ = prod_environ(
        JWT_SECRET="short",
        CORS_ORIGINS="*",
        VAULT_ADDR="http://vault:8200",
        VAULT_AUTH_METHOD="approle",
    )
    with pytest.raises(ConfigurationError) as excinfo:
        SettingsLoader(environ).load(None)
    assert excinfo.value.problems == [
        "JWT_SECRET must be at least 32 bytes in prod",
        "CORS_ORIGINS must list origins in prod, not '*'",
        "VAULT_ROLE_ID is required for VAULT_AUTH_METHOD=approle",
        "VAULT_SECRET_ID is required for VAULT_AUTH_METHOD=approle",
    ]


def test_bootstrap_skips_production_checks_so_vault_can_supply_secrets() -> None:
    loaded = SettingsLoader({"APP_ENV": "prod", "VAULT_ADDR": "http://vault:8200"}).bootstrap()
    assert loaded.settings.vault_addr == "http://vault:8200"


def test_invalid_values_name_setting_and_source_but_never_the_value(tmp_path: Path) -> None:
    secret_value = "not-base64-!!-super-secret-value"
    (tmp_path / "ENCRYPTION_KEY").write_text(secret_value)
    environ = {"SECRETS_DIR": str(tmp_path), "PORT": "eighty", "TRUSTED_PROXIES": "-1"}
    with pytest.raises(ConfigurationError) as excinfo:
        SettingsLoader(environ).load(None)
    message = str(excinfo.value)
    assert "PORT (from env)" in message
    assert "TRUSTED_PROXIES (from env)" in message
    assert "ENCRYPTION_KEY (from secret_file)" in message
    assert secret_value not in message
    assert "eighty" not in message


def test_lists_are_comma_separated() -> None:
    settings = (
        SettingsLoader(
            {"CORS_ORIGINS": "https://a.example, https://b.example", "MODULES_DISABLED": ""}
        )
        .load(None)
        .settings
    )
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.modules_disabled == []


def test_secret_values_include_url_passwords_but_not_whole_urls() -> None:
    settings = (
        SettingsLoader(
            {"REDIS_URL": "redis://:hunter2-redis@r:6379/0", "METRICS_TOKEN": "metrics-token-1"}
        )
        .load(None)
        .settings
    )
    values = settings.secret_values()
    assert "hunter2-redis" in values
    assert "metrics-token-1" in values
    assert settings.redis_url not in values
    assert settings.display_value("redis_url") == "redis://:****@r:6379/0"
    assert settings.display_value("metrics_token") == "********"


def test_prod_refuses_weak_or_published_previous_jwt_secrets() -> None:
    environ = prod_environ(JWT_PREVIOUS_SECRETS=f"weak-pw,{DEV_JWT_SECRET},{'x' * 40}")
    with pytest.raises(ConfigurationError) as excinfo:
        SettingsLoader(environ).load(None)
    assert excinfo.value.problems == [
        "JWT_PREVIOUS_SECRETS: every secret must be at least 32 bytes in prod (1 shorter)",
        "JWT_PREVIOUS_SECRETS holds the development default; remove it",
    ]
    assert "weak-pw" not in str(excinfo.value)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_the_published_defaults_serve_loopback_addresses_in_dev(host: str) -> None:
    assert SettingsLoader({"HOST": host}).load(None).settings.jwt_secret == DEV_JWT_SECRET


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "app.example.com"])  # noqa: S104
def test_no_environment_serves_other_addresses_with_the_published_defaults(host: str) -> None:
    with pytest.raises(ConfigurationError) as excinfo:
        SettingsLoader({"APP_ENV": "test", "HOST": host}).load(None)
    names = [problem.split(" ", 1)[0] for problem in excinfo.value.problems]
    assert names == ["JWT_SECRET", "ENCRYPTION_KEY"]
    environ = {"HOST": host, "JWT_PREVIOUS_SECRETS": DEV_JWT_SECRET, "JWT_SECRET": "x" * 40}
    with pytest.raises(ConfigurationError) as excinfo:
        SettingsLoader({**environ, "ENCRYPTION_KEY": GOOD_KEY}).load(None)
    assert [p.split(" ", 1)[0] for p in excinfo.value.problems] == ["JWT_PREVIOUS_SECRETS"]
