"""Vault over HTTPS (what the prod overlay configures): the app trusts only the CA named by
``VAULT_CACERT``, against a real OpenBao serving TLS. An impostor's certificate is refused."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.devstack import VaultServer, free_port
from core.errors import StartupError
from core.testing import AppFactory, manager_of

JWT_FROM_VAULT = "jwt-secret-from-tls-vault-0123456789abcdef"


@pytest.fixture(scope="module")
def tls_vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VaultServer]:
    root = tmp_path_factory.mktemp("vault-tls")
    server = VaultServer(free_port(), log_file=root / "vault.log", tls_dir=root / "tls")
    server.start()
    yield server
    server.stop()


def approle(server: VaultServer) -> dict[str, str]:
    path = f"tls-{uuid.uuid4().hex[:8]}"
    role_id, secret_id = server.seed({"JWT_SECRET": JWT_FROM_VAULT}, path=path, role_name=path)
    return {
        "VAULT_ADDR": server.addr,
        "VAULT_AUTH_METHOD": "approle",
        "VAULT_ROLE_ID": role_id,
        "VAULT_SECRET_ID": secret_id,
        "VAULT_SECRET_PATH": path,
    }


def test_vault_over_https_with_the_configured_ca(
    make_app: AppFactory, tls_vault: VaultServer
) -> None:
    assert tls_vault.addr.startswith("https://")
    env = {**approle(tls_vault), "VAULT_CACERT": str(tls_vault.ca_file)}
    app = make_app(env)
    manager = manager_of(app)
    assert manager.settings.jwt_secret == JWT_FROM_VAULT
    assert manager.loaded.source_of("jwt_secret") == "vault"
    assert app.test_client().get("/health/ready").get_json()["checks"]["vault"]["status"] == "ok"


def test_a_certificate_not_signed_by_the_configured_ca_is_refused(
    make_app: AppFactory, tls_vault: VaultServer, tmp_path: Path
) -> None:
    """The system CAs do not know this server's CA, and another CA file is no better: a
    man in the middle with his own certificate never receives the Vault credentials."""
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_text(Path("/etc/ssl/certs/ca-certificates.crt").read_text())
    for cacert in ("", str(other_ca)):
        with pytest.raises(StartupError) as refused:
            make_app({**approle(tls_vault), "VAULT_CACERT": cacert})
        assert "vault" in str(refused.value).lower()
