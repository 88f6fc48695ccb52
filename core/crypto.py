"""Field-level encryption of sensitive values: one interface, two backends.

- **Vault transit** (``VAULT_TRANSIT_KEY`` set and Vault configured): the key never leaves
  Vault; tokens look like ``vault:v<key version>:...`` and Vault handles key rotation.
- **Local AES-256-GCM** keyed with ``ENCRYPTION_KEY`` (32 bytes, URL-safe base64): tokens look
  like ``v1:local:<base64url(nonce || ciphertext || tag)>`` with a random 96-bit nonce. The
  ``v1:local`` header is authenticated as associated data, so it cannot be swapped; a later
  key or format gets a new header and old tokens stay readable.

New values are encrypted by the primary backend; decryption picks the backend from the
token's header, so values written locally stay readable after switching to transit. A
tampered token or the wrong key raises :class:`~core.errors.CryptoError`, whose message never
contains the value or the key.
"""

from __future__ import annotations

import base64
import binascii
import os
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from config.settings import Settings
from core.errors import ConfigurationError, CryptoError

if TYPE_CHECKING:
    from core.managers.vault import VaultManager

_NONCE_BYTES = 12
_TAG_BYTES = 16


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.encode("ascii") + b"=" * (-len(text) % 4))


class CipherBackend(ABC):
    """Turns bytes into a self-describing text token and back."""

    name: ClassVar[str]
    #: Every token of this backend starts with it; decryption dispatches on it.
    prefix: ClassVar[str]

    @abstractmethod
    def encrypt(self, data: bytes) -> str: ...

    @abstractmethod
    def decrypt(self, token: str) -> bytes: ...


class LocalAesGcm(CipherBackend):
    """AES-256-GCM with a key held by the process (``ENCRYPTION_KEY``)."""

    name = "local"
    prefix = "v1:local:"
    _aad = b"v1:local"

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ConfigurationError("ENCRYPTION_KEY must decode to 32 bytes")
        self._aead = AESGCM(key)

    @classmethod
    def from_setting(cls, value: str) -> LocalAesGcm:
        """From the URL-safe base64 text of ``ENCRYPTION_KEY`` (padding optional)."""
        try:
            key = _b64url_decode(value)
        except (binascii.Error, ValueError):
            raise ConfigurationError("ENCRYPTION_KEY must be URL-safe base64") from None
        return cls(key)

    def encrypt(self, data: bytes) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = nonce + self._aead.encrypt(nonce, data, self._aad)
        return self.prefix + base64.urlsafe_b64encode(sealed).decode("ascii").rstrip("=")

    def decrypt(self, token: str) -> bytes:
        try:
            sealed = _b64url_decode(token.removeprefix(self.prefix))
        except (binascii.Error, ValueError):
            raise CryptoError("encrypted value is not valid base64url") from None
        if len(sealed) < _NONCE_BYTES + _TAG_BYTES:
            raise CryptoError("encrypted value is truncated")
        nonce, ciphertext = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
        try:
            return self._aead.decrypt(nonce, ciphertext, self._aad)
        except InvalidTag:
            raise CryptoError(
                "encrypted value failed authentication (tampered or another ENCRYPTION_KEY)"
            ) from None


class VaultTransit(CipherBackend):
    """Vault's transit engine; the key stays in Vault."""

    name = "vault"
    prefix = "vault:"

    def __init__(self, vault: VaultManager, key: str) -> None:
        self.vault = vault
        self.key = key

    def encrypt(self, data: bytes) -> str:
        return self.vault.encrypt(data, key=self.key)

    def decrypt(self, token: str) -> bytes:
        return self.vault.decrypt(token, key=self.key)


class FieldEncryptor:
    """Encrypts field values with ``primary``; decrypts tokens of any known backend."""

    def __init__(self, primary: CipherBackend, *others: CipherBackend) -> None:
        self.primary = primary
        self._backends = (primary, *others)

    @classmethod
    def from_settings(cls, settings: Settings, vault: VaultManager | None = None) -> FieldEncryptor:
        """Transit when ``VAULT_TRANSIT_KEY`` is set (Vault required), else local AES-GCM.

        The local backend is always there for decryption, so switching to transit keeps old
        values readable.
        """
        local = LocalAesGcm.from_setting(settings.encryption_key)
        if not settings.vault_transit_key:
            return cls(local)
        if vault is None:
            raise ConfigurationError("VAULT_TRANSIT_KEY is set but Vault is not (set VAULT_ADDR)")
        return cls(VaultTransit(vault, settings.vault_transit_key), local)

    @property
    def backend(self) -> str:
        """Name of the backend new values are encrypted with (``vault`` or ``local``)."""
        return self.primary.name

    def encrypt(self, value: str) -> str:
        return self.primary.encrypt(value.encode("utf-8"))

    def decrypt(self, token: str) -> str:
        try:
            return self.decrypt_bytes(token).decode("utf-8")
        except UnicodeDecodeError:
            raise CryptoError("decrypted value is not UTF-8 text") from None

    def encrypt_bytes(self, data: bytes) -> str:
        return self.primary.encrypt(data)

    def decrypt_bytes(self, token: str) -> bytes:
        for backend in self._backends:
            if token.startswith(backend.prefix):
                return backend.decrypt(token)
        if token.startswith(VaultTransit.prefix):
            raise CryptoError("value was encrypted with Vault transit, which is not configured")
        raise CryptoError("not an encrypted value of a known format")
