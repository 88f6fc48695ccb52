"""Kubernetes auth: what can run here without a Kubernetes API.

A successful login needs Kubernetes' TokenReview API, so it is not tested here. What is tested:
reading the service-account token file (fresh at every login, because Kubernetes rotates it),
the errors for a missing or empty file, and a login that the real OpenBao refuses.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from config.settings import Settings
from core.devstack import VaultServer, free_port
from core.errors import VaultError
from core.managers.vault import VaultManager

# Shaped like a JWT so that a leak would be obvious (and the log redactor would catch it).
FAKE_JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2lnbmF0dXJl"


def _settings(addr: str, token_path: Path) -> Settings:
    return Settings(
        app_env="test",
        vault_addr=addr,
        vault_auth_method="kubernetes",
        vault_kubernetes_role="app",
        vault_kubernetes_token_path=str(token_path),
        vault_timeout=2.0,
    )


def _self_signed_ca_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture
def kubernetes_auth(vault_server: VaultServer) -> str:
    """Kubernetes auth enabled on OpenBao, pointing at an API that does not exist."""
    client = vault_server.client()
    if "kubernetes/" not in client.sys.list_auth_methods()["data"]:
        client.sys.enable_auth_method("kubernetes")
    client.auth.kubernetes.configure(
        kubernetes_host=f"http://127.0.0.1:{free_port()}",
        kubernetes_ca_cert=_self_signed_ca_pem(),
        disable_local_ca_jwt=True,
    )
    client.auth.kubernetes.create_role(
        "app", bound_service_account_names=["app"], bound_service_account_namespaces=["default"]
    )
    return vault_server.addr


def test_the_service_account_token_is_read_fresh_at_every_login(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("first-token\n")
    vault = VaultManager(_settings("http://127.0.0.1:1", token_file))

    assert vault.service_account_jwt() == "first-token"
    token_file.write_text("rotated-token")
    assert vault.service_account_jwt() == "rotated-token"
    vault.close()


def test_a_missing_token_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "serviceaccount" / "token"
    vault = VaultManager(_settings("http://127.0.0.1:1", missing))

    with pytest.raises(VaultError, match="cannot read the service-account token") as excinfo:
        vault.login()
    assert str(missing) in str(excinfo.value)
    assert "mounted" in str(excinfo.value)
    vault.close()


def test_an_empty_token_file_is_a_clear_error(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("  \n")
    vault = VaultManager(_settings("http://127.0.0.1:1", token_file))

    with pytest.raises(VaultError, match="is empty"):
        vault.login()
    vault.close()


def test_a_login_refused_by_vault_fails_start_up_without_the_token(
    kubernetes_auth: str, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(FAKE_JWT)
    vault = VaultManager(_settings(kubernetes_auth, token_file))

    with pytest.raises(VaultError, match=r"Vault login \(kubernetes\) at .* failed") as excinfo:
        vault.login()
    assert FAKE_JWT not in str(excinfo.value)
    assert vault.logins == 0
    vault.close()
