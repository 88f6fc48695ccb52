"""Real servers for a run: the dev stack (``core.devstack``) and production gunicorn."""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.harness.client import request
from bench.harness.common import HOST, NO_LIMITS, PYTHON, ROOT, base_env, say
from bench.harness.host import (
    children,
    free_port,
    pin,
)
from core.devstack.process import ChildProcess, NotReady


class Stack:
    """MongoDB, PostgreSQL and Redis (``core.devstack``) on free ports in a temp dir."""

    def __init__(self, servers: Sequence[str] = ("mongodb", "postgres", "redis")) -> None:
        self.names = tuple(servers)
        self.root = Path(tempfile.mkdtemp(prefix="pb04-bench-"))
        self.mongodb: Any = None
        self.postgres: Any = None
        self.redis: Any = None

    def __enter__(self) -> Stack:
        from core.devstack import MongoServer, PostgresServer, RedisServer

        started = time.monotonic()
        if "mongodb" in self.names:
            self.mongodb = MongoServer(self.root / "mongodb", free_port())
        if "postgres" in self.names:
            self.postgres = PostgresServer(self.root / "postgres", free_port())
        if "redis" in self.names:
            self.redis = RedisServer(self.root / "redis", free_port())
        try:
            with ThreadPoolExecutor(max_workers=3, thread_name_prefix="bench-stack") as pool:
                futures = [pool.submit(server.start, 60) for server in self.servers]
                for future in futures:
                    future.result()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        say(f"dev stack up in {time.monotonic() - started:.1f}s ({', '.join(self.names)})")
        return self

    @property
    def servers(self) -> list[Any]:
        return [s for s in (self.mongodb, self.postgres, self.redis) if s is not None]

    def pin(self, cpus: set[int]) -> None:
        """Keep the stores off the core of the server under test (PostgreSQL backends are
        forked later and inherit the postmaster's affinity)."""
        for server in self.servers:
            if server.pid is not None:
                pin(server.pid, cpus)

    def __exit__(self, *exc: object) -> None:
        for server in reversed(self.servers):
            with contextlib.suppress(Exception):
                server.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def app_env(self, **overrides: str) -> dict[str, str]:
        """Production settings (``APP_ENV=prod``) against these servers, limits out of the way."""
        secrets_dir = self.root / "secrets"
        secrets_dir.mkdir(exist_ok=True)
        env = {
            "APP_ENV": "prod",
            "MONGODB_DB": "bench",
            "REDIS_KEY_PREFIX": "bench:",
            "JWT_SECRET": secrets.token_urlsafe(48),
            "ENCRYPTION_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            "SECRETS_DIR": str(secrets_dir),
            "MODULES_PACKAGES": "modules,bench.modules",
            "RATE_LIMIT_IP": NO_LIMITS,
            "RATE_LIMIT_USER": NO_LIMITS,
            "RATE_LIMIT_API_KEY": NO_LIMITS,
            "RATE_LIMIT_SOCKET": NO_LIMITS,
            # Every benchmark client is 127.0.0.1: the per-IP limits of the routes that hash
            # passwords or refresh tokens (as the test apps set them, core.testing.plugin).
            "RATE_LIMIT_REGISTER": NO_LIMITS,
            "RATE_LIMIT_LOGIN": NO_LIMITS,
            "RATE_LIMIT_REFRESH": NO_LIMITS,
            # The fan-out spreads hundreds of sockets over a few users.
            "SOCKETIO_MAX_SOCKETS_PER_USER": "100000",
            # ...and every one of them comes from 127.0.0.1.
            "SOCKETIO_MAX_CONNECTIONS_PER_IP": "100000",
            "SHUTDOWN_TIMEOUT": "1",
            # The stores share a core with wrk (and, on a shared machine, with other work):
            # at the default 100 ms a busy machine turned a few requests in 10,000 into 503s
            # (the revocation check fails closed), which invalidates a run.
            "RATE_LIMIT_REDIS_TIMEOUT_MS": "500",
        }
        if self.mongodb is not None:
            env["MONGODB_URI"] = self.mongodb.uri
        if self.postgres is not None:
            env["POSTGRES_DSN"] = self.postgres.dsn
        if self.redis is not None:
            env["REDIS_URL"] = self.redis.url
        env.update(overrides)
        return env


class Gunicorn:
    """``gunicorn -c gunicorn.conf.py APP`` (one gevent worker) on a free port, run as a
    :class:`~core.devstack.process.ChildProcess`."""

    def __init__(
        self, app_spec: str, env: dict[str, str], log_dir: Path, name: str, root: Path = ROOT
    ) -> None:
        self.app_spec = app_spec
        self.root = root  # the checkout served (another commit's worktree for comparisons)
        self.port = free_port()
        self.env = base_env({**env, "HOST": HOST, "PORT": str(self.port)})
        self.log_path = log_dir / f"gunicorn-{name}.log"
        self.name = name
        self.child: ChildProcess | None = None
        self.worker = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, ready_path: str, timeout: float = 60.0) -> Gunicorn:
        command = [PYTHON, "-m", "gunicorn", "-c", str(self.root / "gunicorn.conf.py")]
        child = ChildProcess([*command, self.app_spec], self.log_path, env=self.env, cwd=self.root)
        self.child = child.start()
        try:
            child.wait_ready(
                lambda: request("GET", self.url + ready_path, timeout=2)[0] == 200,
                timeout,
                f"gunicorn {self.name}",
            )
        except NotReady as exc:
            raise RuntimeError(f"{exc}: {self.log_tail()}") from None
        assert child.proc is not None
        workers = children(child.proc.pid)
        if len(workers) != 1:
            raise RuntimeError(f"gunicorn {self.name}: expected one worker, found {workers}")
        self.worker = workers[0]
        say(f"gunicorn {self.name} ({self.app_spec}) on {self.url}, worker pid {self.worker}")
        return self

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> int | None:
        """SIGTERM, wait for the exit (30 s, then SIGKILL); the exit code."""
        child, self.child = self.child, None
        if child is None or child.proc is None:
            return None
        child.stop(grace=30)
        return child.proc.returncode

    def kill(self) -> None:
        """SIGKILL to the master and its worker at once (a crash, a killed pod)."""
        if self.child is not None:
            self.child.kill()
            self.child = None

    def __enter__(self) -> Gunicorn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def checkout(ref: str) -> Iterator[Path]:
    """A temporary git worktree of ``ref`` (removed afterwards); the checkout itself for ''."""
    if not ref:
        yield ROOT
        return
    path = Path(tempfile.mkdtemp(prefix="pb04-bench-before-"))
    git = ["git", "-C", str(ROOT)]
    subprocess.run([*git, "worktree", "add", "--detach", str(path), ref], check=True)
    try:
        yield path
    finally:
        subprocess.run([*git, "worktree", "remove", "--force", str(path)], check=False)
        shutil.rmtree(path, ignore_errors=True)
