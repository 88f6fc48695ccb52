"""Token lifecycle against a real OpenBao: renewal, re-login, outages, health and close."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

from core.devstack import VaultServer
from core.errors import VaultError
from tests.support.servers import wait_until
from tests.vault.conftest import SECRETS, MakeRole, MakeVault, VaultRole


def _expire_time(vault_server: VaultServer, token: str) -> str:
    return str(vault_server.client().auth.token.lookup(token)["data"]["expire_time"])


def _relogin_reasons(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.__dict__["reason"] for r in caplog.records if r.getMessage() == "vault re-login"]


def test_approle_token_is_renewed_before_expiry_then_replaced_at_its_max_ttl(
    make_role: MakeRole,
    make_vault: MakeVault,
    vault_server: VaultServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="core.managers.vault")
    role = make_role(token_ttl="3s", token_max_ttl="6s")
    vault = make_vault(role.settings(vault_kv_cache_ttl=0))
    first_token = vault.client.token
    first_expiry = _expire_time(vault_server, first_token)

    assert wait_until(lambda: vault.renewals >= 1)
    assert vault.logins == 1
    assert _expire_time(vault_server, first_token) > first_expiry  # the same token, extended

    # Renewal cannot go past the max TTL (6s): the thread logs in again before it is reached.
    assert wait_until(lambda: vault.logins >= 2)
    assert vault.renewals >= 2
    assert vault.client.token != first_token
    assert vault.renewal_failures == 0
    # Replaced before it expired, not after a refused renewal.
    assert _relogin_reasons(caplog) == ["max_ttl"]
    assert vault.read_secret() == SECRETS


def test_a_revoked_token_is_replaced_on_the_next_read(
    role: VaultRole, make_vault: MakeVault, vault_server: VaultServer
) -> None:
    vault = make_vault(role.settings(vault_kv_cache_ttl=0))
    revoked = vault.client.token
    vault_server.client().auth.token.revoke(revoked)

    assert vault.read_secret() == SECRETS
    assert vault.logins == 2
    assert vault.client.token != revoked


def test_renewal_thread_logs_in_again_when_renewal_is_refused(
    make_role: MakeRole,
    make_vault: MakeVault,
    vault_server: VaultServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="core.managers.vault")
    role = make_role(token_ttl="3s", token_max_ttl="1h")
    vault = make_vault(role.settings())
    vault_server.client().auth.token.revoke(vault.client.token)

    assert wait_until(lambda: vault.logins >= 2)  # no request needed: the thread recovers
    assert vault.renewals == 0
    assert _relogin_reasons(caplog) == ["renewal_refused:Forbidden"]
    assert vault.health()["status"] == "ok"


def test_a_policy_denial_is_an_error_and_not_a_reason_to_log_in_again(
    role: VaultRole, make_vault: MakeVault
) -> None:
    vault = make_vault(role.settings())

    with pytest.raises(VaultError, match="Forbidden"):
        vault.read_secret("somebody-elses-secret")
    assert vault.logins == 1


def test_renewal_backs_off_while_vault_is_down_and_recovers_when_it_is_back(
    make_role: MakeRole,
    make_vault: MakeVault,
    outage: Callable[[], Any],
) -> None:
    role = make_role(token_ttl="3s", token_max_ttl="1h")
    vault = make_vault(role.settings(vault_kv_cache_ttl=0))
    vault.retry_min, vault.retry_max = 0.2, 0.4

    with outage():
        assert wait_until(lambda: vault.renewal_failures >= 2)
    role.reseed()  # the dev server lost everything: its old token is unknown now

    assert wait_until(lambda: vault.logins >= 2)
    assert vault.read_secret() == SECRETS


def test_token_auth_renews_a_renewable_token(
    role: VaultRole, make_vault: MakeVault, vault_server: VaultServer
) -> None:
    token = vault_server.client().auth.token.create(policies=[role.name], ttl="3s")
    vault = make_vault(
        role.settings(vault_auth_method="token", vault_token=token["auth"]["client_token"])
    )

    assert wait_until(lambda: vault.renewals >= 1)
    assert vault.logins == 1
    assert vault.read_secret() == SECRETS


def test_token_auth_cannot_recover_a_revoked_token(
    role: VaultRole, make_vault: MakeVault, vault_server: VaultServer
) -> None:
    token = vault_server.client().auth.token.create(policies=[role.name], ttl="1h")
    vault = make_vault(
        role.settings(
            vault_auth_method="token",
            vault_token=token["auth"]["client_token"],
            vault_kv_cache_ttl=0,
        )
    )
    vault_server.client().auth.token.revoke(token["auth"]["client_token"])

    with pytest.raises(VaultError, match="Forbidden"):
        vault.read_secret()
    assert vault.health()["status"] == "error"


def test_health_reports_an_error_while_vault_is_down_and_ok_after(
    role: VaultRole, make_vault: MakeVault, outage: Callable[[], Any]
) -> None:
    vault = make_vault(role.settings())
    assert vault.health()["status"] == "ok"

    with outage():
        down = vault.health()
    role.reseed()
    up = vault.health()

    assert down["status"] == "error"
    assert down["error"] == "ConnectionError"
    assert up["status"] == "ok"
    assert up["auth_method"] == "approle"


def test_close_stops_the_renewal_thread_and_is_idempotent(
    role: VaultRole, make_vault: MakeVault
) -> None:
    vault = make_vault(role.settings())  # 1h TTL: the thread sleeps for 40 minutes
    thread = vault.renewal_thread
    assert thread is not None
    assert thread.is_alive()

    vault.close()
    assert not thread.is_alive()  # woken by close(), not by the join timeout
    vault.close()


def test_a_renewal_after_a_failed_one_returns_to_the_normal_schedule(
    make_role: MakeRole, make_vault: MakeVault, vault_server: VaultServer
) -> None:
    # Regression: a success after a failure left the retry time in place, so the thread
    # renewed in a tight loop until the next login.
    role = make_role(token_ttl="3s", token_max_ttl="1h")
    vault = make_vault(role.settings(vault_kv_cache_ttl=0, vault_timeout=0.3))
    vault.retry_min, vault.retry_max = 0.1, 0.2
    assert vault_server.pid is not None
    os.kill(vault_server.pid, signal.SIGSTOP)  # renewals time out, the token stays valid
    try:
        assert wait_until(lambda: vault.renewal_failures >= 1)
    finally:
        os.kill(vault_server.pid, signal.SIGCONT)
    assert wait_until(lambda: vault.renewals >= 1)
    renewals = vault.renewals
    time.sleep(1.0)  # a 3 s token is renewed every 2 s: at most one more renewal here
    assert vault.renewals - renewals <= 1
    assert vault.logins == 1
