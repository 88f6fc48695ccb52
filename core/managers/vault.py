"""VaultManager: logs in to HashiCorp Vault (or OpenBao) and reads KV v2 secrets.

Auth methods: ``token`` (``VAULT_TOKEN``), ``approle`` (``VAULT_ROLE_ID`` +
``VAULT_SECRET_ID``) and ``kubernetes`` (the pod's service-account token file +
``VAULT_KUBERNETES_ROLE``). The settings loader reads the application secret at
``VAULT_KV_MOUNT``/``VAULT_SECRET_PATH`` through :meth:`VaultManager.read_secret` once at
start-up. No secret value or token is ever logged.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import requests

from config.loader import vault_problems
from config.settings import Settings
from core.errors import ConfigurationError, StartupError
from core.managers.base import HealthCheck, HealthResult, Manager, timed_check

logger = logging.getLogger(__name__)


class VaultError(StartupError):
    """Vault cannot be reached, refuses the login, or has no secret at the path."""


class VaultManager(Manager):
    name = "vault"
    unavailable_errors = (requests.ConnectionError, requests.Timeout, hvac.exceptions.VaultDown)

    def __init__(self, settings: Settings) -> None:
        problems = vault_problems(settings)
        if problems:
            raise ConfigurationError(problems)
        assert settings.vault_addr is not None
        self.settings = settings
        self.addr = settings.vault_addr
        self._lock = threading.Lock()
        self.client = hvac.Client(url=settings.vault_addr, timeout=settings.vault_timeout)

    def login(self) -> None:
        """Authenticate with the configured method; raises :class:`VaultError`."""
        method = self.settings.vault_auth_method
        try:
            with self._lock:
                if method == "token":
                    self.client.token = self.settings.vault_token
                    self.client.auth.token.lookup_self()
                elif method == "approle":
                    self.client.auth.approle.login(
                        role_id=self.settings.vault_role_id,
                        secret_id=self.settings.vault_secret_id,
                    )
                else:
                    jwt = Path(self.settings.vault_kubernetes_token_path).read_text().strip()
                    self.client.auth.kubernetes.login(self.settings.vault_kubernetes_role, jwt)
        except (hvac.exceptions.VaultError, requests.RequestException, OSError) as exc:
            raise VaultError(
                f"Vault login ({method}) at {self.addr} failed: {type(exc).__name__}"
            ) from exc
        logger.info("vault login ok", extra={"vault_auth_method": method})

    def read_secret(self, path: str | None = None) -> dict[str, Any]:
        """The data of the KV v2 secret at ``path`` (default ``VAULT_SECRET_PATH``)."""
        path = path or self.settings.vault_secret_path
        try:
            response = self.client.secrets.kv.v2.read_secret_version(
                path=path, mount_point=self.settings.vault_kv_mount, raise_on_deleted_version=True
            )
        except hvac.exceptions.InvalidPath:
            raise VaultError(
                f"Vault has no secret at {self.settings.vault_kv_mount}/{path}"
            ) from None
        except (hvac.exceptions.VaultError, requests.RequestException) as exc:
            raise VaultError(
                f"Vault read of {self.settings.vault_kv_mount}/{path} failed: {type(exc).__name__}"
            ) from exc
        data: dict[str, Any] = response["data"]["data"]
        return data

    def health(self) -> HealthResult:
        return timed_check(self.client.auth.token.lookup_self)

    def readiness_checks(self) -> dict[str, HealthCheck]:
        return {"vault": self.health}

    def close(self) -> None:
        self.client.adapter.close()
