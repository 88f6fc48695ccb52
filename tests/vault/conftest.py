"""Vault test helpers: VaultManagers against the session OpenBao, outages and transit keys.

An outage stops the session server and always starts it again; OpenBao's dev server keeps
everything in memory, so whatever a test needs afterwards must be seeded again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from config.settings import Settings
from core.devstack import VaultServer
from core.managers.vault import VaultManager
from core.testing import TEST_ENCRYPTION_KEY
from tests.support.servers import stopped

SECRETS = {"API_TOKEN": "kv-secret-value-7f3a9c", "REGION": "eu-west"}


class VaultRole:
    """An AppRole seeded on the session server; ``reseed()`` restores it after a restart."""

    def __init__(self, server: VaultServer, token_ttl: str, token_max_ttl: str) -> None:
        self.server = server
        uid = uuid.uuid4().hex[:10]
        self.path = f"vt-{uid}"
        self.name = f"vt-{uid}"
        self.token_ttl, self.token_max_ttl = token_ttl, token_max_ttl
        self.role_id, self.secret_id = self.reseed()

    def reseed(self) -> tuple[str, str]:
        return self.server.seed(
            SECRETS,
            path=self.path,
            role_name=self.name,
            token_ttl=self.token_ttl,
            token_max_ttl=self.token_max_ttl,
        )

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "app_env": "test",
            "vault_addr": self.server.addr,
            "vault_auth_method": "approle",
            "vault_role_id": self.role_id,
            "vault_secret_id": self.secret_id,
            "vault_secret_path": self.path,
            "vault_timeout": 2.0,
            "encryption_key": TEST_ENCRYPTION_KEY,
        }
        return Settings(**{**values, **overrides})


MakeRole = Callable[..., VaultRole]
MakeVault = Callable[..., VaultManager]


@pytest.fixture
def make_role(vault_server: VaultServer) -> MakeRole:
    def factory(token_ttl: str = "1h", token_max_ttl: str = "4h") -> VaultRole:  # noqa: S107
        return VaultRole(vault_server, token_ttl, token_max_ttl)

    return factory


@pytest.fixture
def role(make_role: MakeRole) -> VaultRole:
    return make_role()


@pytest.fixture
def make_vault() -> Iterator[MakeVault]:
    """Logged-in managers; ``runtime=True`` also runs ``init_app`` (renewal thread)."""
    managers: list[VaultManager] = []

    def factory(settings: Settings, *, runtime: bool = True) -> VaultManager:
        manager = VaultManager(settings)
        managers.append(manager)
        manager.login()
        if runtime:
            manager.init_app(Flask(__name__))
        return manager

    yield factory
    for manager in managers:
        manager.close()


@pytest.fixture
def outage(vault_server: VaultServer) -> Callable[[], Any]:
    """``with outage(): ...`` runs the block while the session OpenBao is stopped."""

    return lambda: stopped(vault_server)


@pytest.fixture
def transit_key(vault_server: VaultServer) -> Callable[..., str]:
    """Create a fresh transit key (mounting transit when needed) and return its name."""

    def create(**options: Any) -> str:
        client = vault_server.client()
        if "transit/" not in client.sys.list_mounted_secrets_engines()["data"]:
            client.sys.enable_secrets_engine("transit")
        name = f"k-{uuid.uuid4().hex[:10]}"
        client.secrets.transit.create_key(name, **options)
        return name

    return create
