"""Field-level encryption: Vault transit (real OpenBao) and local AES-256-GCM."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from typing import Any

import pytest

from config.settings import Settings
from core.crypto import FieldEncryptor, LocalAesGcm
from core.errors import ConfigurationError, CryptoError, DependencyUnavailable
from core.testing import TEST_ENCRYPTION_KEY
from tests.vault.conftest import MakeVault, VaultRole

PLAINTEXT = "4111-1111-1111-1111 ✓"
OTHER_KEY = base64.urlsafe_b64encode(os.urandom(32)).decode()
TransitKey = Callable[..., str]


def _flip(token: str, index: int = -6) -> str:
    """The token with one base64 character changed (still valid base64)."""
    char = token[index]
    return token[:index] + ("A" if char != "A" else "B") + token[index + 1 :]


def local(key: str = TEST_ENCRYPTION_KEY) -> FieldEncryptor:
    return FieldEncryptor.from_settings(Settings(encryption_key=key))


# -- Vault transit -------------------------------------------------------------------------


def test_transit_round_trip(
    role: VaultRole, make_vault: MakeVault, transit_key: TransitKey
) -> None:
    vault = make_vault(role.settings(vault_transit_key=transit_key()))

    token = vault.encrypt(PLAINTEXT.encode())

    assert token.startswith("vault:v1:")
    assert PLAINTEXT not in token
    assert vault.decrypt(token) == PLAINTEXT.encode()


def test_transit_rejects_a_tampered_value_without_echoing_it(
    role: VaultRole, make_vault: MakeVault, transit_key: TransitKey
) -> None:
    vault = make_vault(role.settings(vault_transit_key=transit_key()))
    tampered = _flip(vault.encrypt(PLAINTEXT.encode()))

    with pytest.raises(CryptoError, match="tampered") as excinfo:
        vault.decrypt(tampered)
    assert tampered not in str(excinfo.value)
    assert PLAINTEXT not in str(excinfo.value)


def test_transit_refuses_a_value_encrypted_with_another_key(
    role: VaultRole, make_vault: MakeVault, transit_key: TransitKey
) -> None:
    vault = make_vault(role.settings(vault_transit_key=transit_key()))
    token = vault.encrypt(PLAINTEXT.encode(), key=transit_key())

    with pytest.raises(CryptoError):
        vault.decrypt(token)


def test_transit_with_a_derived_key_needs_the_same_context(
    role: VaultRole, make_vault: MakeVault, transit_key: TransitKey
) -> None:
    vault = make_vault(role.settings(vault_transit_key=transit_key(derived=True)))
    token = vault.encrypt(PLAINTEXT.encode(), context="user:1")

    assert vault.decrypt(token, context="user:1") == PLAINTEXT.encode()
    with pytest.raises(CryptoError):
        vault.decrypt(token, context="user:2")


def test_transit_needs_a_configured_key(role: VaultRole, make_vault: MakeVault) -> None:
    vault = make_vault(role.settings())

    with pytest.raises(ConfigurationError, match="VAULT_TRANSIT_KEY"):
        vault.encrypt(b"x")


def test_transit_while_vault_is_down_is_dependency_unavailable(
    role: VaultRole, make_vault: MakeVault, transit_key: TransitKey, outage: Callable[[], Any]
) -> None:
    vault = make_vault(role.settings(vault_transit_key=transit_key()))

    with outage(), pytest.raises(DependencyUnavailable):
        vault.encrypt(b"x")


def test_field_encryptor_uses_transit_when_configured_and_still_reads_local_values(
    role: VaultRole, make_vault: MakeVault, transit_key: TransitKey
) -> None:
    settings = role.settings(vault_transit_key=transit_key())
    encryptor = FieldEncryptor.from_settings(settings, make_vault(settings))
    written_locally = local().encrypt(PLAINTEXT)

    token = encryptor.encrypt(PLAINTEXT)

    assert encryptor.backend == "vault"
    assert token.startswith("vault:v1:")
    assert encryptor.decrypt(token) == PLAINTEXT
    assert encryptor.decrypt(written_locally) == PLAINTEXT


def test_field_encryptor_refuses_transit_without_vault() -> None:
    with pytest.raises(ConfigurationError, match="VAULT_TRANSIT_KEY is set but Vault is not"):
        FieldEncryptor.from_settings(
            Settings(vault_transit_key="orders", encryption_key=TEST_ENCRYPTION_KEY), None
        )


# -- local AES-256-GCM ---------------------------------------------------------------------


@pytest.mark.parametrize("value", [PLAINTEXT, "", "x" * 10_000])
def test_local_round_trip(value: str) -> None:
    encryptor = local()

    token = encryptor.encrypt(value)

    assert encryptor.backend == "local"
    assert token.startswith("v1:local:")
    assert encryptor.decrypt(token) == value


def test_local_encryption_of_the_same_value_differs_every_time() -> None:
    encryptor = local()

    assert encryptor.encrypt(PLAINTEXT) != encryptor.encrypt(PLAINTEXT)


@pytest.mark.parametrize("index", [len("v1:local:") + 2, 30, -2])
def test_local_rejects_a_tampered_value_without_echoing_it(index: int) -> None:
    tampered = _flip(local().encrypt(PLAINTEXT), index)

    with pytest.raises(CryptoError, match="tampered") as excinfo:
        local().decrypt(tampered)
    assert PLAINTEXT not in str(excinfo.value)
    assert tampered not in str(excinfo.value)


def test_local_rejects_a_value_encrypted_with_another_key() -> None:
    token = local(OTHER_KEY).encrypt(PLAINTEXT)

    with pytest.raises(CryptoError, match="another ENCRYPTION_KEY") as excinfo:
        local().decrypt(token)
    assert TEST_ENCRYPTION_KEY not in str(excinfo.value)


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("v1:local:abc", "truncated"),
        ("v1:local:***", "truncated|base64"),
        ("v1:local:é", "base64"),
        ("plain text", "known format"),
        ("v2:local:AAAA", "known format"),
        ("vault:v1:AAAA", "Vault transit, which is not configured"),
    ],
)
def test_local_rejects_malformed_values(token: str, message: str) -> None:
    with pytest.raises(CryptoError, match=message):
        local().decrypt(token)


def test_decrypting_bytes_that_are_not_text_is_a_crypto_error() -> None:
    encryptor = local()
    token = encryptor.encrypt_bytes(b"\xff\xfe")

    assert encryptor.decrypt_bytes(token) == b"\xff\xfe"
    with pytest.raises(CryptoError, match="UTF-8"):
        encryptor.decrypt(token)


def test_a_local_key_must_be_32_bytes() -> None:
    with pytest.raises(ConfigurationError, match="32 bytes"):
        LocalAesGcm.from_setting(base64.urlsafe_b64encode(b"short").decode())
