"""Cached KV v2 reads against a real OpenBao, including reads while it is stopped."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from core.devstack import VaultServer
from core.errors import DependencyUnavailable, StartupError, VaultError
from core.managers.vault import VaultManager
from core.testing import AppFactory, manager_of
from tests.vault.conftest import SECRETS, MakeVault, VaultRole

Outage = Callable[[], Any]


def test_a_cached_secret_is_served_while_vault_is_stopped(
    role: VaultRole, make_vault: MakeVault, outage: Outage
) -> None:
    vault = make_vault(role.settings(vault_kv_cache_ttl=300))
    assert vault.read_secret() == SECRETS

    with outage():
        assert vault.read_secret() == SECRETS
    assert vault.stale_reads == 0  # still fresh: Vault was not even asked


def test_an_expired_cache_entry_is_served_stale_with_a_warning_while_vault_is_down(
    role: VaultRole, make_vault: MakeVault, outage: Outage, caplog: pytest.LogCaptureFixture
) -> None:
    vault = make_vault(role.settings(vault_kv_cache_ttl=0))
    assert vault.read_secret() == SECRETS

    with outage(), caplog.at_level(logging.WARNING, logger="core.managers.vault"):
        assert vault.read_secret() == SECRETS
    role.reseed()

    assert vault.stale_reads == 1
    stale = [
        r for r in caplog.records if r.getMessage() == "vault unreachable; serving a cached secret"
    ]
    assert len(stale) == 1
    assert stale[0].levelno == logging.WARNING
    assert stale[0].__dict__["path"] == f"secret/{role.path}"
    for value in SECRETS.values():
        assert value not in caplog.text
        assert value not in repr(stale[0].__dict__)
    assert vault.read_secret() == SECRETS  # back to Vault (after logging in again)
    assert vault.stale_reads == 1


def test_the_cache_answers_until_its_ttl_runs_out(
    role: VaultRole, make_vault: MakeVault, vault_server: VaultServer
) -> None:
    cached = make_vault(role.settings(vault_kv_cache_ttl=300))
    uncached = make_vault(role.settings(vault_kv_cache_ttl=0))
    assert cached.read_secret() == SECRETS
    vault_server.client().secrets.kv.v2.create_or_update_secret(
        path=role.path, secret={"REGION": "us-east"}
    )

    assert cached.read_secret() == SECRETS
    assert uncached.read_secret() == {"REGION": "us-east"}


def test_a_caller_cannot_change_the_cached_value(role: VaultRole, make_vault: MakeVault) -> None:
    vault = make_vault(role.settings(vault_kv_cache_ttl=300))
    vault.read_secret()["REGION"] = "changed"

    assert vault.read_secret() == SECRETS


def test_nothing_cached_while_vault_is_down_is_dependency_unavailable(
    role: VaultRole, make_vault: MakeVault, outage: Outage
) -> None:
    vault = make_vault(role.settings())

    with outage(), pytest.raises(DependencyUnavailable) as excinfo:
        vault.read_secret()
    assert excinfo.value.dependency == "vault"
    assert excinfo.value.code == "DEPENDENCY_UNAVAILABLE"


def test_vault_down_at_start_up_is_a_clear_startup_error(role: VaultRole, outage: Outage) -> None:
    vault = VaultManager(role.settings())
    try:
        with outage(), pytest.raises(StartupError) as excinfo:
            vault.login()
    finally:
        vault.close()
    message = str(excinfo.value)
    assert isinstance(excinfo.value, VaultError)
    assert message.startswith(
        f"Vault login (approle) at {role.server.addr} failed: ConnectionError"
    )
    assert "make run" in message
    assert role.secret_id not in message


def test_a_read_failing_during_start_up_is_a_vault_error_not_a_503(
    role: VaultRole, make_vault: MakeVault, outage: Outage
) -> None:
    vault = make_vault(role.settings(), runtime=False)  # logged in, init_app not run yet

    with outage(), pytest.raises(VaultError, match=r"Vault read of secret/.* failed"):
        vault.read_secret()


def test_a_missing_secret_is_a_vault_error_naming_the_path(
    role: VaultRole, make_vault: MakeVault
) -> None:
    root = role.server.root_token  # the role's policy would answer 403 before 404
    vault = make_vault(role.settings(vault_auth_method="token", vault_token=root))

    with pytest.raises(VaultError, match=f"no secret at secret/{role.path}-missing"):
        vault.read_secret(f"{role.path}-missing")


def test_app_readiness_follows_vault_down_and_back_without_a_restart(
    make_app: AppFactory, role: VaultRole, outage: Outage
) -> None:
    app = make_app(
        {
            "VAULT_ADDR": role.server.addr,
            "VAULT_AUTH_METHOD": "approle",
            "VAULT_ROLE_ID": role.role_id,
            "VAULT_SECRET_ID": role.secret_id,
            "VAULT_SECRET_PATH": role.path,
        }
    )
    client = app.test_client()
    vault: VaultManager = manager_of(app).vault
    assert client.get("/health/ready").status_code == 200

    with outage():
        down = client.get("/health/ready")
        assert vault.read_secret() == SECRETS  # read at start-up, still cached
    role.reseed()
    up = client.get("/health/ready")

    assert down.status_code == 503
    assert down.get_json()["checks"]["vault"]["status"] == "error"
    assert up.status_code == 200
    assert up.get_json()["checks"]["vault"]["status"] == "ok"
