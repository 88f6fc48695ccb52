"""Kubernetes auth against the real OpenBao, end to end.

OpenBao's ``kubernetes`` auth method is configured as in a cluster (API address, the API
server's CA, a reviewer token of Vault's own service account) and points at a TokenReview
endpoint served by the test (:mod:`tests.support.kubernetes_api`): the only piece that is not
the real thing is the API server. The pod's service-account token is a projected file the
kubelet rotates (``VAULT_KUBERNETES_TOKEN_PATH``). Shown: the app logs in with its role and
reads its settings, renews its token, logs in again (with the rotated token) when renewal
reaches the max TTL and after its token expired, and a token the TokenReview rejects stops a
production start-up with one clear line.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac.exceptions
import pytest

from config.settings import Settings
from core.devstack import VaultServer, wait_for
from core.errors import StartupError, VaultError
from core.managers.vault import VaultManager
from core.testing import AppFactory, manager_of
from tests.production.helpers import Gunicorn, json_lines
from tests.support.kubernetes_api import (
    ProjectedToken,
    ServiceAccountIssuer,
    TokenReviewServer,
)
from tests.vault.conftest import SECRETS, MakeVault

NAMESPACE, ACCOUNT = "shop", "python-base-04"
VAULT_REVIEWER = "system:serviceaccount:vault:vault"


@pytest.fixture(scope="module")
def issuer() -> ServiceAccountIssuer:
    return ServiceAccountIssuer()


@pytest.fixture(scope="module")
def token_review(issuer: ServiceAccountIssuer) -> Iterator[TokenReviewServer]:
    server = TokenReviewServer(issuer).start()
    yield server
    server.stop()


@dataclass
class KubernetesRole:
    """A Vault role bound to the pod's service account, its secret and the pod's token."""

    vault: VaultServer
    name: str
    secret_path: str
    token: ProjectedToken

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "app_env": "test",
            "vault_addr": self.vault.addr,
            "vault_auth_method": "kubernetes",
            "vault_kubernetes_role": self.name,
            "vault_kubernetes_token_path": str(self.token.path),
            "vault_secret_path": self.secret_path,
            "vault_timeout": 2.0,
        }
        return Settings(**{**values, **overrides})

    def env(self) -> dict[str, str]:
        return {
            "VAULT_ADDR": self.vault.addr,
            "VAULT_AUTH_METHOD": "kubernetes",
            "VAULT_KUBERNETES_ROLE": self.name,
            "VAULT_KUBERNETES_TOKEN_PATH": str(self.token.path),
            "VAULT_SECRET_PATH": self.secret_path,
        }


MakeRole = Callable[..., KubernetesRole]


@pytest.fixture
def kubernetes_role(
    vault_server: VaultServer,
    token_review: TokenReviewServer,
    issuer: ServiceAccountIssuer,
    tmp_path: Path,
) -> MakeRole:
    """``kubernetes_role(ttl=..., max_ttl=..., secrets=...)``: OpenBao's kubernetes auth
    pointed at the test's TokenReview API, a role for the pod and its token mounted."""

    def make(
        ttl: str = "1h", max_ttl: str = "4h", secrets: dict[str, str] | None = None
    ) -> KubernetesRole:
        client = vault_server.client()
        if "kubernetes/" not in client.sys.list_auth_methods()["data"]:
            client.sys.enable_auth_method("kubernetes")
        client.auth.kubernetes.configure(
            kubernetes_host=token_review.url,
            kubernetes_ca_cert=token_review.ca_pem,
            token_reviewer_jwt=issuer.issue("vault", "vault", audience="kubernetes"),
            disable_local_ca_jwt=True,
        )
        name = f"k8s-{uuid.uuid4().hex[:8]}"
        vault_server.seed(secrets or SECRETS, path=name, role_name=name)  # KV secret + policy
        client.auth.kubernetes.create_role(
            name,
            bound_service_account_names=[ACCOUNT],
            bound_service_account_namespaces=[NAMESPACE],
            policies=[name],
            ttl=ttl,
            max_ttl=max_ttl,
            audience="vault",  # what the Deployment's projected token asks for
        )
        token = ProjectedToken(tmp_path / name / "var/run/secrets/vault")
        token.write(issuer.issue(NAMESPACE, ACCOUNT))
        return KubernetesRole(vault_server, name, name, token)

    return make


def current_jti(role: KubernetesRole) -> str:
    import jwt

    claims = jwt.decode(role.token.path.read_text(), options={"verify_signature": False})
    return str(claims["jti"])


# -- the token file -----------------------------------------------------------------------


def _file_settings(token_path: Path) -> Settings:
    return Settings(
        app_env="test",
        vault_addr="http://127.0.0.1:1",
        vault_auth_method="kubernetes",
        vault_kubernetes_role="app",
        vault_kubernetes_token_path=str(token_path),
    )


def test_the_service_account_token_is_read_fresh_at_every_login(
    tmp_path: Path, issuer: ServiceAccountIssuer
) -> None:
    projected = ProjectedToken(tmp_path / "vault")
    first, rotated = issuer.issue(NAMESPACE, ACCOUNT), issuer.issue(NAMESPACE, ACCOUNT)
    projected.write(first)
    vault = VaultManager(_file_settings(projected.path))

    assert vault.service_account_jwt() == first
    projected.write(rotated)  # the kubelet swaps ..data in one rename
    assert vault.service_account_jwt() == rotated
    vault.close()


def test_a_missing_token_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "serviceaccount" / "token"
    vault = VaultManager(_file_settings(missing))

    with pytest.raises(VaultError, match="cannot read the service-account token") as excinfo:
        vault.login()
    assert str(missing) in str(excinfo.value)
    assert "mounted" in str(excinfo.value)
    vault.close()


def test_an_empty_token_file_is_a_clear_error(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("  \n")
    vault = VaultManager(_file_settings(token_file))

    with pytest.raises(VaultError, match="is empty"):
        vault.login()
    vault.close()


# -- against OpenBao and the TokenReview API --------------------------------------------


def test_the_app_logs_in_with_its_service_account_and_reads_its_settings_from_vault(
    make_app: AppFactory, kubernetes_role: MakeRole, token_review: TokenReviewServer
) -> None:
    role = kubernetes_role(secrets={"JWT_AUDIENCE": "aud-from-vault-k8s"})
    reviewed = len(token_review.reviews)

    app = make_app(role.env())

    manager = manager_of(app)
    assert manager.settings.jwt_audience == "aud-from-vault-k8s"
    assert manager.vault.logins == 1
    [review] = token_review.reviews[reviewed:]
    assert review.caller == VAULT_REVIEWER  # Vault asks with its own reviewer token
    assert review.subject == f"system:serviceaccount:{NAMESPACE}:{ACCOUNT}"
    assert review.jti == current_jti(role)
    assert review.authenticated
    vault_check = app.test_client().get("/health/ready").get_json()["checks"]["vault"]
    assert vault_check["status"] == "ok"
    assert vault_check["auth_method"] == "kubernetes"


def test_it_renews_then_logs_in_again_with_the_rotated_token_at_the_max_ttl(
    make_vault: MakeVault,
    kubernetes_role: MakeRole,
    token_review: TokenReviewServer,
    issuer: ServiceAccountIssuer,
) -> None:
    role = kubernetes_role(ttl="2s", max_ttl="5s")
    vault = make_vault(role.settings(vault_kv_cache_ttl=0))
    assert vault.read_secret() == SECRETS
    role.token.write(issuer.issue(NAMESPACE, ACCOUNT))  # the kubelet rotates it meanwhile
    rotated = current_jti(role)

    wait_for(lambda: vault.logins >= 2, timeout=30, what="a new login at the max TTL")

    assert vault.renewals >= 1  # renewed while the max TTL allowed
    assert [r.jti for r in token_review.reviews if r.jti == rotated]  # logged in with the new one
    assert vault.read_secret() == SECRETS


def test_after_its_vault_token_expired_it_logs_in_again_and_reads(
    make_vault: MakeVault, kubernetes_role: MakeRole
) -> None:
    role = kubernetes_role(ttl="1s", max_ttl="1s")
    vault = make_vault(role.settings(vault_kv_cache_ttl=0), runtime=False)  # no renewal thread
    assert vault.read_secret() == SECRETS
    time.sleep(2)
    with pytest.raises(hvac.exceptions.Forbidden):
        vault.client.auth.token.lookup_self()  # the token is gone

    assert vault.read_secret() == SECRETS
    assert vault.logins == 2


def test_a_token_the_token_review_rejects_fails_start_up_saying_why(
    make_app: AppFactory,
    kubernetes_role: MakeRole,
    token_review: TokenReviewServer,
    issuer: ServiceAccountIssuer,
) -> None:
    role = kubernetes_role()
    token = role.token.path.read_text()
    issuer.revoke(token)  # its pod was deleted: the API server no longer accepts it

    with pytest.raises(StartupError) as excinfo:
        make_app({**role.env(), "APP_ENV": "prod"})

    message = str(excinfo.value)
    assert message.startswith(f"Vault login (kubernetes) at {role.vault.addr} failed: Forbidden")
    assert "permission denied" in message
    assert f"token at {role.token.path} was refused for role {role.name!r}" in message
    assert "\n" not in message
    assert token not in message
    assert token_review.reviews[-1].jti == current_jti(role)
    assert not token_review.reviews[-1].authenticated


def test_a_rejected_token_stops_the_production_server_with_one_clear_line(
    app_env: dict[str, str],
    kubernetes_role: MakeRole,
    issuer: ServiceAccountIssuer,
    tmp_path: Path,
) -> None:
    role = kubernetes_role()
    token = role.token.path.read_text()
    issuer.revoke(token)
    server = Gunicorn({**app_env, **role.env(), "APP_ENV": "prod"}, tmp_path / "g.log", ())
    try:
        assert server.proc.wait(timeout=90) != 0
    finally:
        server.stop()
    output = server.output()
    said = [line for line in json_lines(output) if "was refused for role" in line["message"]]
    assert len(said) == 1, output
    assert said[0]["message"].startswith("cannot start: Vault login (kubernetes)")
    assert "Traceback" not in output
    assert token not in output
