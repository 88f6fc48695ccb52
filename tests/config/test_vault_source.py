"""Vault KV v2 as a settings source, with AppRole login against a real OpenBao server."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import Result

from core.app_manager import get_app_manager
from core.devstack import VaultServer
from core.errors import StartupError
from core.testing import TEST_JWT_SECRET, AppFactory, manager_of

VAULT_JWT_SECRET = "jwt-secret-from-vault-0123456789abcdef-xyz"


@pytest.fixture
def approle_env(vault_server: VaultServer, app_env: dict[str, str]) -> dict[str, str]:
    path = f"app-{app_env['MONGODB_DB']}"
    role_id, secret_id = vault_server.seed(
        {
            "JWT_SECRET": VAULT_JWT_SECRET,
            "JWT_AUDIENCE": "aud-from-vault",
            "JWT_ISSUER": "iss-from-vault",
        },
        path=path,
        role_name=f"role-{app_env['MONGODB_DB']}",
    )
    return {
        "VAULT_ADDR": vault_server.addr,
        "VAULT_AUTH_METHOD": "approle",
        "VAULT_ROLE_ID": role_id,
        "VAULT_SECRET_ID": secret_id,
        "VAULT_SECRET_PATH": path,
    }


def config_show(make_app: AppFactory, environ: dict[str, str]) -> dict[str, tuple[str, str]]:
    app = make_app(environ, start=False)
    result: Result = app.test_cli_runner().invoke(args=["config", "show"])
    assert result.exit_code == 0, result.output
    rows = {}
    for line in result.output.splitlines():
        name, source, *value = line.split(maxsplit=2)
        rows[name] = (source, value[0] if value else "")
    return rows


def test_one_setting_from_each_source_via_approle(
    make_app: AppFactory, approle_env: dict[str, str], app_env: dict[str, str]
) -> None:
    secrets_dir = Path(app_env["SECRETS_DIR"])
    secrets_dir.mkdir()
    (secrets_dir / "JWT_ISSUER").write_text("iss-from-file\n")
    environ = {**approle_env, "JWT_AUDIENCE": "aud-from-env", "MONGODB_DB": "db_from_env"}
    environ.pop("JWT_SECRET", None)

    app = make_app({**environ, "JWT_SECRET": TEST_JWT_SECRET})
    settings = manager_of(app).settings
    assert settings.jwt_issuer == "iss-from-file"  # file beats Vault
    assert settings.jwt_audience == "aud-from-vault"  # Vault beats env
    assert settings.jwt_secret == VAULT_JWT_SECRET  # Vault beats env
    assert settings.mongodb_db == "db_from_env"  # env beats default
    assert settings.port == 5000  # default

    rows = config_show(make_app, environ)
    assert rows["JWT_ISSUER"] == ("secret_file", "iss-from-file")
    assert rows["JWT_AUDIENCE"] == ("vault", "aud-from-vault")
    assert rows["JWT_SECRET"] == ("vault", "********")
    assert rows["MONGODB_DB"] == ("env", "db_from_env")
    assert rows["PORT"] == ("default", "5000")
    assert rows["VAULT_SECRET_ID"] == ("env", "********")


def test_config_show_never_prints_a_secret(
    make_app: AppFactory, approle_env: dict[str, str]
) -> None:
    app = make_app({**approle_env, "METRICS_TOKEN": "metrics-secret-value"}, start=False)
    output = app.test_cli_runner().invoke(args=["config", "show"]).output
    for secret in (VAULT_JWT_SECRET, approle_env["VAULT_SECRET_ID"], "metrics-secret-value"):
        assert secret not in output


def test_a_refused_approle_login_stops_start_up_without_leaking_the_secret_id(
    make_app: AppFactory, approle_env: dict[str, str]
) -> None:
    wrong = "00000000-0000-0000-0000-000000000000"
    with pytest.raises(StartupError, match=r"Vault login \(approle\) at .* failed") as excinfo:
        make_app({**approle_env, "VAULT_SECRET_ID": wrong})
    assert wrong not in str(excinfo.value)


def test_token_login_reads_the_same_secret(
    make_app: AppFactory, approle_env: dict[str, str], vault_server: VaultServer
) -> None:
    environ = {
        "VAULT_ADDR": vault_server.addr,
        "VAULT_AUTH_METHOD": "token",
        "VAULT_TOKEN": vault_server.root_token,
        "VAULT_SECRET_PATH": approle_env["VAULT_SECRET_PATH"],
    }
    app = make_app(environ)
    assert manager_of(app).settings.jwt_audience == "aud-from-vault"
    response = app.test_client().get("/health/ready")
    assert response.get_json()["checks"]["vault"]["status"] == "ok"


def test_vault_cannot_change_which_modules_load(
    make_app: AppFactory, vault_server: VaultServer, app_env: dict[str, str]
) -> None:
    """``MODULES_*`` decide which settings exist, so they are resolved before Vault is read:
    a Vault key of that name is ignored (and logged), never half-applied."""
    path = f"modules-{app_env['MONGODB_DB']}"
    vault_server.seed({"MODULES_DISABLED": "notes"}, path=path, role_name=f"r-{path}")
    app = make_app(
        {
            "VAULT_ADDR": vault_server.addr,
            "VAULT_TOKEN": vault_server.root_token,
            "VAULT_SECRET_PATH": path,
        },
        start=False,
    )
    with app.app_context():
        manager = get_app_manager()
    assert manager.loaded.ignored_vault_keys == ("MODULES_DISABLED",)
    assert manager.settings.modules_disabled == []
    assert "notes" in [module.name for module in manager.modules.loaded]
