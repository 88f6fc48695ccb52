"""Settings precedence and production refusals (pure: no servers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.generated import new_secret
from config.loader import DEFAULT, DEVDATA, ENV, GENERATED, SECRET_FILE, VAULT, SettingsLoader
from core.errors import ConfigurationError
from tests.support.published import (
    FORMER_DEV_ENCRYPTION_KEY,
    FORMER_DEV_JWT_SECRET,
    FORMER_TEST_ENCRYPTION_KEY,
    FORMER_TEST_JWT_SECRET,
)

GOOD_KEY = new_secret()  # never a value printed here: those are refused


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


PUBLISHED = "holds a value published in this repository; set a secret of your own"


@pytest.mark.parametrize("env", ["prod", "dev", "test"])
@pytest.mark.parametrize(
    ("jwt_secret", "encryption_key"),
    [
        (FORMER_DEV_JWT_SECRET, FORMER_DEV_ENCRYPTION_KEY),
        (FORMER_TEST_JWT_SECRET, FORMER_TEST_ENCRYPTION_KEY),
    ],
)
def test_no_environment_accepts_a_secret_printed_in_the_repository(
    env: str, jwt_secret: str, encryption_key: str, tmp_path: Path
) -> None:
    """On loopback too: anyone can mint an admin token with a published JWT secret."""
    environ = prod_environ(APP_ENV=env, HOST="127.0.0.1", DEVDATA_DIR=str(tmp_path))
    for explicit in (
        {"JWT_SECRET": jwt_secret, "ENCRYPTION_KEY": encryption_key},
        {"JWT_PREVIOUS_SECRETS": f"2026-01-01T00:00:00Z:{jwt_secret}"},
    ):
        with pytest.raises(ConfigurationError) as excinfo:
            SettingsLoader({**environ, **explicit}).load(None)
        assert excinfo.value.problems == [f"{name} {PUBLISHED}" for name in explicit]
        assert jwt_secret not in str(excinfo.value)


def test_dev_generates_its_secrets_once_under_devdata(tmp_path: Path) -> None:
    environ = {"DEVDATA_DIR": str(tmp_path / ".devdata")}
    first = SettingsLoader(environ).load(None)
    stored = tmp_path / ".devdata" / "dev-secrets.json"
    assert stored.stat().st_mode & 0o077 == 0  # readable by its owner only
    assert first.source_of("JWT_SECRET") == first.source_of("ENCRYPTION_KEY") == DEVDATA
    assert len(first.settings.jwt_secret) >= 43
    again = SettingsLoader(environ).load(None)  # the next start (and the CLI) reads them back
    assert again.settings.jwt_secret == first.settings.jwt_secret
    assert again.settings.encryption_key == first.settings.encryption_key
    elsewhere = SettingsLoader({"DEVDATA_DIR": str(tmp_path / "other")}).load(None)
    assert elsewhere.settings.jwt_secret != first.settings.jwt_secret
    # A source wins over the generated value; an empty one does not count.
    given = SettingsLoader({**environ, "JWT_SECRET": "y" * 40, "ENCRYPTION_KEY": ""}).load(None)
    assert given.settings.jwt_secret == "y" * 40
    assert given.source_of("ENCRYPTION_KEY") == DEVDATA


def test_a_test_app_without_secrets_gets_random_ones_never_stored(tmp_path: Path) -> None:
    loaded = SettingsLoader({"APP_ENV": "test", "DEVDATA_DIR": str(tmp_path)}).load(None)
    assert loaded.source_of("JWT_SECRET") == GENERATED
    assert len(loaded.settings.jwt_secret) >= 43
    assert not any(tmp_path.iterdir())


def test_prod_never_generates_secrets_and_refuses_empty_ones(tmp_path: Path) -> None:
    environ = prod_environ(JWT_SECRET="", DEVDATA_DIR=str(tmp_path))
    environ.pop("ENCRYPTION_KEY")
    with pytest.raises(ConfigurationError) as excinfo:
        SettingsLoader(environ).load(None)
    assert excinfo.value.problems == [
        "JWT_SECRET is required in prod",
        "ENCRYPTION_KEY is required in prod",
    ]
    assert not any(tmp_path.iterdir())


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
    entries = [f"2026-01-01T00:00:00Z:{s}" for s in ("weak-pw", FORMER_DEV_JWT_SECRET, "x" * 40)]
    environ = prod_environ(JWT_PREVIOUS_SECRETS=",".join(entries))
    with pytest.raises(ConfigurationError) as excinfo:
        SettingsLoader(environ).load(None)
    assert excinfo.value.problems == [
        f"JWT_PREVIOUS_SECRETS {PUBLISHED}",
        "JWT_PREVIOUS_SECRETS: every secret must be at least 32 bytes in prod (1 shorter)",
    ]
    assert "weak-pw" not in str(excinfo.value)
