"""core.devstack: real servers start, answer real clients, stop, and keep data over a restart."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from core.devstack import (
    DevServerError,
    DevStack,
    MongoServer,
    PortInUseError,
    PostgresServer,
    RedisServer,
    VaultServer,
    free_port,
)
from core.devstack._base import DevServer

pytestmark = [pytest.mark.timeout(60), pytest.mark.servers]

REPO_ROOT = Path(__file__).resolve().parent.parent


def _listening(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _processes_mentioning(needle: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if needle in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


@pytest.fixture
def stopper() -> Iterator[list[DevServer]]:
    """Servers appended here are stopped even when the test fails half-way."""
    servers: list[DevServer] = []
    yield servers
    for server in servers:
        server.stop()


def _stop_checked(server: DevServer) -> None:
    server.stop()
    assert not server.running
    assert server.pid is None
    assert not _listening(server.port)
    server.stop()  # idempotent


def _restart(server: DevServer) -> None:
    pid = server.pid
    _stop_checked(server)
    server.start()  # same object, same port, same data dir
    assert server.running
    assert server.pid not in (None, pid)


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_mongodb_keeps_documents_over_restart(tmp_path: Path, stopper: list[DevServer]) -> None:
    from pymongo import MongoClient

    server = MongoServer(tmp_path / "mongodb", free_port())
    stopper.append(server)
    server.start()
    assert server.uri == f"mongodb://127.0.0.1:{server.port}/?directConnection=true"
    client: MongoClient[dict[str, Any]] = MongoClient(server.uri, serverSelectionTimeoutMS=5000)
    client.app.items.insert_one({"_id": "a", "n": 1})
    with client.start_session() as session, session.start_transaction():
        client.app.items.insert_one({"_id": "b", "n": 2}, session=session)
    assert client.app.items.count_documents({}) == 2
    client.close()

    _restart(server)

    client = MongoClient(server.uri, serverSelectionTimeoutMS=5000)
    assert client.app.items.find_one({"_id": "a"}) == {"_id": "a", "n": 1}
    assert client.app.items.find_one({"_id": "b"}) == {"_id": "b", "n": 2}
    client.close()


def test_postgres_keeps_rows_over_restart(tmp_path: Path, stopper: list[DevServer]) -> None:
    import psycopg2

    server = PostgresServer(tmp_path / "postgres", free_port())
    stopper.append(server)
    server.start()
    assert server.dsn == f"postgresql://app:app@127.0.0.1:{server.port}/app"
    with psycopg2.connect(server.dsn) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
        cur.execute("INSERT INTO items VALUES (1, 'one')")
    conn.close()

    _restart(server)

    conn = psycopg2.connect(server.dsn)
    with conn.cursor() as cur:
        cur.execute("SELECT name, current_user FROM items WHERE id = 1")
        assert cur.fetchone() == ("one", "app")
    conn.close()

    dsn = server.create_database("isolated")
    assert dsn.endswith(f":{server.port}/isolated")
    conn = psycopg2.connect(dsn)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE t (x int)")  # the app user owns the new database
        cur.execute("SELECT current_database()")
        assert cur.fetchone() == ("isolated",)
    conn.close()
    with pytest.raises(DevServerError, match="already exists"):
        server.create_database("isolated")
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(server.dsn.replace("app:app@", "app:wrong@"))


def test_redis_keeps_keys_over_restart(tmp_path: Path, stopper: list[DevServer]) -> None:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    server = RedisServer(tmp_path / "redis", free_port(), password='p@ss:w/o"rd')
    stopper.append(server)
    server.start()
    assert server.url == f"redis://:p%40ss%3Aw%2Fo%22rd@127.0.0.1:{server.port}/0"
    assert server.address == f"redis://127.0.0.1:{server.port}/0"
    client = redis.Redis.from_url(server.url)
    client.set("greeting", "hello")
    client.close()
    no_retry = Retry(NoBackoff(), 0)  # redis-py retries AuthenticationError by default (~4 s)
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=server.port, retry=no_retry).ping()

    _restart(server)

    client = redis.Redis.from_url(server.url)
    assert client.get("greeting") == b"hello"
    client.close()


def _approle_read(vault: VaultServer, role_id: str, secret_id: str) -> dict[str, Any]:
    import hvac

    client = hvac.Client(url=vault.addr)
    client.auth.approle.login(role_id=role_id, secret_id=secret_id)
    assert client.auth.token.lookup_self()["data"]["policies"] == ["app", "default"]
    client.auth.token.renew_self()
    secret = client.secrets.kv.v2.read_secret_version(
        path="app", mount_point="secret", raise_on_deleted_version=True
    )
    data: dict[str, Any] = secret["data"]["data"]
    return data


def test_vault_seed_and_approle_login_survive_restart(
    tmp_path: Path, stopper: list[DevServer]
) -> None:
    import hvac

    server = VaultServer(free_port(), log_file=tmp_path / "vault.log")
    stopper.append(server)
    server.start()
    ids = server.seed({"JWT_SECRET": "jwt", "ENCRYPTION_KEY": "key"})
    assert _approle_read(server, *ids) == {"JWT_SECRET": "jwt", "ENCRYPTION_KEY": "key"}
    assert server.seed({"JWT_SECRET": "jwt2"}) == ids  # idempotent on a running server

    client = hvac.Client(url=server.addr)
    client.auth.approle.login(role_id=ids[0], secret_id=ids[1])
    with pytest.raises(hvac.exceptions.Forbidden):
        client.secrets.kv.v2.create_or_update_secret(path="app", secret={"x": "y"})

    _restart(server)  # in memory: everything is gone until seeded again

    assert server.seed({"JWT_SECRET": "jwt3"}) == ids
    assert _approle_read(server, *ids) == {"JWT_SECRET": "jwt3"}


@pytest.mark.parametrize("kind", ["mongodb", "postgres", "redis", "vault"])
def test_port_in_use_is_reported_before_spawning(tmp_path: Path, kind: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        factories: dict[str, Callable[[], DevServer]] = {
            "mongodb": lambda: MongoServer(tmp_path / "d", port),
            "postgres": lambda: PostgresServer(tmp_path / "d", port),
            "redis": lambda: RedisServer(tmp_path / "d", port),
            "vault": lambda: VaultServer(port, log_file=tmp_path / "vault.log"),
        }
        server = factories[kind]()
        with pytest.raises(PortInUseError) as raised:
            server.start()
    assert str(raised.value) == (
        f"{kind}: port {port} on 127.0.0.1 is already in use "
        f"(set DEV_{kind.upper()}_PORT to another port)"
    )
    assert not server.running
    assert not (tmp_path / "d").exists()


class _CrashingRedis(RedisServer):
    def _command(self) -> list[str]:
        script = "import sys; print('boom: bad setting', file=sys.stderr); sys.exit(3)"
        return [sys.executable, "-c", script]


def test_start_failure_is_one_line_with_log_tail(tmp_path: Path) -> None:
    server = _CrashingRedis(tmp_path / "redis", free_port())
    with pytest.raises(DevServerError) as raised:
        server.start()
    message = str(raised.value)
    assert message.startswith("redis: exited with code 3 while starting; log ")
    assert message.endswith(": boom: bad setting")
    assert "\n" not in message
    assert not server.running


def test_dev_stack_env_secrets_and_restart(tmp_path: Path) -> None:
    import hvac
    import psycopg2

    ports = {name: free_port() for name in ("mongodb", "postgres", "redis", "vault")}
    stack = DevStack(tmp_path / "devdata", ports)
    try:
        env = stack.start()
        assert set(env) == {
            "MONGODB_URI",
            "MONGODB_DB",
            "POSTGRES_DSN",
            "REDIS_URL",
            "VAULT_ADDR",
            "VAULT_AUTH_METHOD",
            "VAULT_ROLE_ID",
            "VAULT_SECRET_ID",
            "VAULT_KV_MOUNT",
            "VAULT_SECRET_PATH",
        }
        assert env["REDIS_URL"] == f"redis://127.0.0.1:{ports['redis']}/0"
        secrets_file = tmp_path / "devdata" / "dev-secrets.json"
        assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
        secrets = json.loads(secrets_file.read_text())
        assert len(secrets["ENCRYPTION_KEY"]) == 44  # 32 bytes, URL-safe base64
        assert _approle_read(stack.vault, env["VAULT_ROLE_ID"], env["VAULT_SECRET_ID"]) == secrets
        # The dev Vault's root token is its own, not one printed in the repository: whoever
        # else is on the machine cannot read or replace the app's secrets with "root".
        assert not hvac.Client(url=env["VAULT_ADDR"], token="root").is_authenticated()
        assert len(stack.vault.root_token) >= 32
        conn = psycopg2.connect(env["POSTGRES_DSN"])
        conn.close()
        assert sorted((tmp_path / "devdata" / "logs").iterdir()) == [
            tmp_path / "devdata" / "logs" / f"{name}.log"
            for name in ("mongodb", "postgres", "redis", "vault")
        ]

        stack.stop()
        assert stack.running == dict.fromkeys(ports, False)
        stack.stop()

        env = stack.start()  # same secrets again, new process
        assert _approle_read(stack.vault, env["VAULT_ROLE_ID"], env["VAULT_SECRET_ID"]) == secrets
    finally:
        stack.stop()
    assert not any(_listening(port) for port in ports.values())


def _cli(devdata: Path, ports: dict[str, int], *command: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DEVDATA_DIR=str(devdata))
    env.pop("REDIS_URL", None)
    env.update({f"DEV_{name.upper()}_PORT": str(port) for name, port in ports.items()})
    return subprocess.run(
        [sys.executable, "-m", "core.devstack", *command],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_run_passes_env_and_leaves_nothing_running(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("mongodb", "postgres", "redis", "vault")}
    devdata = tmp_path / "devdata"
    script = "import os; print(os.environ['REDIS_URL'])"
    result = _cli(devdata, ports, "run", "--", sys.executable, "-c", script)

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"redis://127.0.0.1:{ports['redis']}/0\n"
    assert "devstack: redis    redis://127.0.0.1:" in result.stderr
    assert "app:app@" not in result.stderr  # no secrets printed
    assert not any(_listening(port) for port in ports.values())
    assert _processes_mentioning(str(devdata)) == []
    assert _processes_mentioning(f"127.0.0.1:{ports['vault']}") == []


def test_cli_exit_code_of_the_command(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("mongodb", "postgres", "redis", "vault")}
    result = _cli(tmp_path / "devdata", ports, "run", sys.executable, "-c", "raise SystemExit(7)")
    assert result.returncode == 7, result.stderr


def test_cli_port_in_use_is_one_line(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("mongodb", "postgres", "redis", "vault")}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", ports["redis"]))
        taken.listen()
        result = _cli(tmp_path / "devdata", ports, "run", "--", "true")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"devstack: redis: port {ports['redis']} on 127.0.0.1 is already in use "
        "(set DEV_REDIS_PORT to another port)\n"
    )
    assert not any(_listening(port) for name, port in ports.items() if name != "redis")


def test_a_flask_command_in_another_terminal_finds_the_running_stack(tmp_path: Path) -> None:
    """`make run` on other ports, then `flask db status` in a second terminal: no environment
    but a stale export, yet it talks to the running stack (its published settings win)."""
    ports = {name: free_port() for name in ("mongodb", "postgres", "redis", "vault")}
    devdata = tmp_path / "devdata"
    published = devdata / "stack.json"
    stale = f"postgresql://app:app@127.0.0.1:{free_port()}/app"
    second_terminal = (
        "import os, stat, subprocess, sys\n"
        f"env = {{'PATH': os.environ['PATH'], 'DEVDATA_DIR': {str(devdata)!r}, "
        f"'POSTGRES_DSN': {stale!r}}}\n"
        "flask = [sys.executable, '-m', 'flask', '--app', 'app', 'db', 'status']\n"
        "done = subprocess.run(flask, env=env, capture_output=True, text=True, timeout=60)\n"
        "print(done.stdout + done.stderr)\n"
        f"print('mode', oct(stat.S_IMODE(os.stat({str(published)!r}).st_mode)))\n"
        "sys.exit(done.returncode)\n"
    )
    result = _cli(devdata, ports, "run", "--", sys.executable, "-c", second_terminal)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "unavailable" not in result.stdout
    assert ["core", "0001_audit_log", "pending"] in [
        line.split() for line in result.stdout.splitlines()
    ]
    assert "mode 0o600" in result.stdout
    assert not published.exists()  # gone with the stack
