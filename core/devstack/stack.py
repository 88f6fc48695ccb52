"""The four dev servers together, with persistent data under one root (e.g. `.devdata/`)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from config.generated import FILE_NAME, development_secrets
from core.devstack._base import DevServer, DevServerError, PortInUseError
from core.devstack.mongodb import MongoServer
from core.devstack.postgres import PostgresServer
from core.devstack.redis import RedisServer
from core.devstack.vault import VaultServer
from core.errors import ConfigurationError

SERVER_NAMES = ("mongodb", "postgres", "redis", "vault")


class DevStack:
    """MongoDB, PostgreSQL, Redis and Vault for the app; `start()` returns the app's env."""

    def __init__(self, root: Path, ports: dict[str, int], host: str = "127.0.0.1") -> None:
        missing = [name for name in SERVER_NAMES if name not in ports]
        if missing:
            raise ValueError(f"DevStack: no port for {', '.join(missing)}")
        self.root = root.absolute()
        logs = self.root / "logs"
        self.mongodb = MongoServer(
            self.root / "mongodb", ports["mongodb"], host, log_file=logs / "mongodb.log"
        )
        self.postgres = PostgresServer(
            self.root / "postgres", ports["postgres"], host, log_file=logs / "postgres.log"
        )
        self.redis = RedisServer(
            self.root / "redis", ports["redis"], host, log_file=logs / "redis.log"
        )
        self.vault = VaultServer(ports["vault"], host, log_file=logs / "vault.log")
        self.servers: tuple[DevServer, ...] = (self.mongodb, self.postgres, self.redis, self.vault)

    @property
    def secrets_file(self) -> Path:
        return self.root / FILE_NAME

    def dev_secrets(self) -> dict[str, str]:
        """JWT_SECRET and ENCRYPTION_KEY, generated once and kept (0600) across restarts: the
        same file ``python app.py`` reads without the stack (config/generated.py)."""
        try:
            return development_secrets(self.root)
        except ConfigurationError as exc:
            raise DevServerError("; ".join(exc.problems)) from None

    def start(self) -> dict[str, str]:
        """Start all servers in parallel, seed Vault, return the app's environment."""
        for server in self.servers:
            server.check_port()  # before spawning anything: nothing to undo then
        secrets = self.dev_secrets()
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        pool = ThreadPoolExecutor(max_workers=len(self.servers), thread_name_prefix="devstack")
        try:
            futures = [pool.submit(server.start) for server in self.servers]
            errors = [exc for exc in (f.exception() for f in futures) if exc is not None]
            if errors:
                # A taken port is the most actionable message when several went wrong.
                errors.sort(key=lambda exc: not isinstance(exc, PortInUseError))
                raise errors[0]
            role_id, secret_id = self.vault.seed(secrets)
        except BaseException:
            self.stop()
            raise
        finally:
            pool.shutdown(wait=False)
        return {
            "MONGODB_URI": self.mongodb.uri,
            "MONGODB_DB": "app",
            "POSTGRES_DSN": self.postgres.dsn,
            "REDIS_URL": self.redis.url,
            "VAULT_ADDR": self.vault.addr,
            "VAULT_AUTH_METHOD": "approle",
            "VAULT_ROLE_ID": role_id,
            "VAULT_SECRET_ID": secret_id,
            "VAULT_KV_MOUNT": "secret",
            "VAULT_SECRET_PATH": "app",
        }

    def stop(self) -> None:
        """Stop every server, in reverse start order; safe to call twice."""
        for server in reversed(self.servers):
            server.stop()

    @property
    def running(self) -> dict[str, bool]:
        return {server.name: server.running for server in self.servers}
