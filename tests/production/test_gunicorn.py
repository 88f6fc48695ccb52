"""The production server in real processes: ``gunicorn -c gunicorn.conf.py app:app`` with the
gevent worker, against the real test servers."""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import stat
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
import socketio

from config.settings import Settings
from core.devstack import free_port, wait_for
from tests.production.helpers import (
    ROOT,
    DevelopmentServer,
    Gunicorn,
    gunicorn_config,
    json_lines,
    sample,
)
from tests.support.published import FORMER_DEV_JWT_SECRET

GunicornFactory = Callable[..., Gunicorn]


@pytest.fixture
def gunicorn(app_env: dict[str, str], tmp_path: Path) -> Iterator[GunicornFactory]:
    started: list[Gunicorn] = []

    def start(*args: str, env: dict[str, str | None] | None = None, ready: bool = True) -> Gunicorn:
        server = Gunicorn(
            {**app_env, **(env or {})}, tmp_path / f"gunicorn-{len(started)}.log", args
        )
        started.append(server)
        if ready:
            server.wait_ready()
        return server

    yield start
    for server in started:
        server.stop()


def concurrently(url: str, count: int) -> tuple[list[int], float]:
    """GET ``url`` ``count`` times at once; the statuses and the seconds it all took."""
    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=count) as pool:
        responses = list(pool.map(lambda _: requests.get(url, timeout=15), range(count)))
    return [r.status_code for r in responses], time.monotonic() - began


def test_one_gevent_worker_serves_concurrent_requests_metrics_and_json_access_logs(
    gunicorn: GunicornFactory,
) -> None:
    metrics_port = free_port()
    server = gunicorn(env={"METRICS_PORT": str(metrics_port)})
    # Five 2-second waits on one worker finish together only when the worker is cooperative:
    # time.sleep (monkey-patched) and psycopg2 (psycogreen) yield to the other requests.
    for path in ("/public/probe/slow?seconds=2", "/public/metered/pg-sleep?seconds=2"):
        statuses, took = concurrently(server.url + path, 5)
        assert statuses == [200] * 5
        # One after another they take at least 10 s; together about 2 s. 7 s proves they
        # overlapped and leaves a loaded machine its margin (not a budget).
        assert took < 7, path

    item = requests.get(
        f"{server.url}/public/metered/items/i-42?secret=hunter2",
        headers={"X-Request-ID": "req-gunicorn-1"},
        timeout=5,
    )
    assert item.status_code == 200
    # The access line is written without a LogRecord (decision 100), redacted all the same.
    token = jwt.encode({"sub": "someone"}, "x" * 32, algorithm="HS256")
    leaky = requests.get(
        f"{server.url}/public/metered/items/{token}",
        headers={"X-Request-ID": "req-gunicorn-2", "User-Agent": f"probe Bearer {token}"},
        timeout=5,
    )
    assert leaky.status_code == 200
    assert requests.get(f"{server.url}/metrics", timeout=5).status_code == 404
    metrics = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    route = "/public/metered/items/<item_id>"
    assert sample(metrics, "http_requests_total", method="GET", route=route, status="200") == 2
    slow = {"method": "GET", "route": "/public/probe/slow", "status": "200"}
    assert sample(metrics, "http_requests_total", **slow) == 5
    assert sample(metrics, "dependency_up", dependency="postgres") == 1

    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=30) == 0
    lines = json_lines(server.output())  # every line, the master's included, is JSON
    access = [line for line in lines if line["logger"] == "gunicorn.access"]
    [entry] = [line for line in access if line.get("request_id") == "req-gunicorn-1"]
    assert entry["method"] == "GET"
    assert entry["path"] == "/public/metered/items/i-42"
    assert entry["status"] == 200
    assert entry["duration_ms"] >= 0
    assert "hunter2" not in server.output()
    [redacted] = [line for line in access if line.get("request_id") == "req-gunicorn-2"]
    assert list(redacted) == [
        "ts", "level", "logger", "message", "request_id", "method", "path", "status",
        "duration_ms", "bytes", "remote_addr", "user_agent", "protocol",
    ]  # fmt: skip
    assert redacted["message"] == "GET /public/metered/items/[REDACTED] 200"
    assert redacted["path"] == "/public/metered/items/[REDACTED]"
    assert redacted["user_agent"] == "probe Bearer [REDACTED]"
    assert redacted["level"] == "INFO"
    assert redacted["remote_addr"] == "127.0.0.1"
    assert redacted["protocol"] == "HTTP/1.1"
    assert isinstance(redacted["bytes"], int)
    assert token not in server.output()
    assert sum(1 for line in access if line["path"] == "/public/probe/slow") == 5
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2)


def test_sigterm_drains_in_flight_requests_with_readiness_503_then_exits_zero(
    gunicorn: GunicornFactory,
) -> None:
    server = gunicorn(env={"SHUTDOWN_TIMEOUT": "10"})
    result: dict[str, Any] = {}

    def slow_request() -> None:
        response = requests.get(f"{server.url}/public/probe/slow?seconds=2", timeout=15)
        result["status"], result["body"] = response.status_code, response.json()

    worker = threading.Thread(target=slow_request)
    worker.start()
    time.sleep(0.3)  # the slow request is being served
    signalled = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)

    ready = requests.get(f"{server.url}/health/ready", timeout=5)
    assert ready.status_code == 503
    assert ready.json()["reason"] == "shutting_down"
    # Still listening while draining: a request arriving now is served.
    assert requests.get(f"{server.url}/health/live", timeout=5).status_code == 200

    worker.join(timeout=15)
    assert result == {"status": 200, "body": {"slept": 2.0}}
    assert server.proc.wait(timeout=30) == 0
    graceful_timeout = 10 + 10  # SHUTDOWN_TIMEOUT + SHUTDOWN_MARGIN
    assert time.monotonic() - signalled < graceful_timeout
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.url}/health/live", timeout=2)
    messages = [line["message"] for line in json_lines(server.output())]
    order = [messages.index(m) for m in ("shutdown requested", "draining", "app stopped")]
    assert order == sorted(order)


def test_gunicorn_refuses_more_than_one_worker(gunicorn: GunicornFactory) -> None:
    server = gunicorn("--workers", "2", ready=False)
    assert server.proc.wait(timeout=20) == 1
    assert "workers must be 1" in server.output()


def test_gunicorn_refuses_to_start_with_gevent_websocket_installed(
    gunicorn: GunicornFactory, tmp_path: Path
) -> None:
    fake = tmp_path / "site" / "geventwebsocket"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    server = gunicorn(env={"PYTHONPATH": str(fake.parent)}, ready=False)
    assert server.proc.wait(timeout=20) == 1
    assert "gevent-websocket is installed" in server.output()


def test_socketio_polling_and_websocket_under_the_gevent_worker(gunicorn: GunicornFactory) -> None:
    server = gunicorn()

    handshake = requests.get(f"{server.url}/socket.io/?EIO=4&transport=polling", timeout=5)
    assert handshake.status_code == 200
    assert handshake.text.startswith("0")  # Engine.IO "open" packet
    assert "sid" in json.loads(handshake.text[1:])

    uid = uuid.uuid4().hex[:8]
    user = {"email": f"g{uid}@example.com", "username": f"g_{uid}", "password": "long-password-1"}
    assert requests.post(f"{server.url}/public/register", json=user, timeout=10).status_code == 201
    credentials = {"email": user["email"], "password": user["password"]}
    login = requests.post(f"{server.url}/public/login", json=credentials, timeout=10)
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]

    for transports in (["websocket"], ["polling"]):
        client = socketio.Client(reconnection=False)
        client.connect(server.url, auth={"token": token}, transports=transports, wait_timeout=10)
        try:
            assert client.transport() == transports[0]
            answer = client.call("list_rooms", {}, timeout=5)
            assert answer["ok"] is True
            assert isinstance(answer["rooms"], list)
        finally:
            client.disconnect()

    refused = socketio.Client(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        refused.connect(server.url, transports=["websocket"], wait_timeout=10)


def test_gunicorn_settings_follow_the_app_settings_and_the_one_worker_model() -> None:
    fields = Settings.model_fields
    config = gunicorn_config()
    assert config["bind"] == [f"{fields['host'].default}:{fields['port'].default}"]
    shutdown = fields["shutdown_timeout"].default
    assert config["graceful_timeout"] == math.ceil(shutdown) + config["SHUTDOWN_MARGIN"]
    assert config["LINGER"] < config["SHUTDOWN_MARGIN"]
    assert (config["workers"], config["worker_class"], config["preload_app"]) == (
        1,
        "gevent",
        False,
    )
    assert config["control_socket_disable"] is True
    assert config["keepalive"] > 60  # longer than the ingress' upstream keep-alive
    assert gunicorn_config({"HOST": "::", "PORT": "8000"})["bind"] == ["[::]:8000"]
    assert gunicorn_config({"SHUTDOWN_TIMEOUT": "2.5"})["graceful_timeout"] == 3 + 10


def test_the_worker_freezes_what_start_up_made_and_collects_garbage_less_often() -> None:
    """In a reconnect storm the default thresholds spent a quarter of the worker's CPU
    scanning the sockets it held (docs/performance.md); the worker's hook raises them."""
    script = (
        "import gc, json, runpy, sys\n"
        "default = gc.get_threshold()\n"
        f"config = runpy.run_path({str(ROOT / 'gunicorn.conf.py')!r})\n"
        "before = gc.get_threshold()\n"
        "config['collect_less']()\n"
        "print(json.dumps([default, before, gc.get_threshold(), gc.get_freeze_count()]))\n"
    )
    found = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    default, before, after, frozen = json.loads(found.stdout)
    # Python's defaults ((700, 10, 10) to 3.12, (2000, 10, 10) in 3.13), untouched until the
    # worker's hook
    assert before == default
    assert after == list(gunicorn_config()["GC_THRESHOLDS"])
    assert after[0] >= 10_000
    assert frozen > 1_000  # the modules and classes of start-up, out of every collection


def forged_admin_token(secret: str) -> str:
    """What an attacker mints with a JWT secret published in the repository."""
    now = int(time.time())
    fields = Settings.model_fields
    claims = {
        "sub": "000000000000000000000000",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
        "type": "access",
        "iss": fields["jwt_issuer"].default,
        "aud": fields["jwt_audience"].default,
        "fam": uuid.uuid4().hex,
        "roles": ["admin", "user"],
    }
    kid = hashlib.sha256(secret.encode()).hexdigest()[:16]
    return jwt.encode(claims, secret, "HS256", headers={"kid": kid})


def attack(url: str) -> requests.Response:
    """Create an API key as a forged admin: the prize of a published JWT secret."""
    return requests.post(
        f"{url}/userauth/api-keys",
        json={"name": "stolen", "scopes": ["*"]},
        headers={"Authorization": f"Bearer {forged_admin_token(FORMER_DEV_JWT_SECRET)}"},
        timeout=10,
    )


def test_gunicorn_without_app_env_is_prod_and_refuses_the_published_secrets(
    gunicorn: GunicornFactory,
) -> None:
    unset: dict[str, str | None] = {"APP_ENV": None, "JWT_SECRET": None, "ENCRYPTION_KEY": None}
    server = gunicorn(env={**unset, "HOST": "0.0.0.0"}, ready=False)  # noqa: S104
    wait_for(
        lambda: server.proc.poll() is not None or requests.get(server.url, timeout=2),
        what="gunicorn to exit or serve",
    )
    if server.proc.poll() is None:  # it serves: the attack is on
        response = attack(server.url)
        pytest.fail(f"started on the published secrets; forged admin got {response.status_code}")
    assert server.proc.wait(timeout=20) != 0
    output = server.output()
    assert "JWT_SECRET is required in prod" in output
    assert "ENCRYPTION_KEY is required in prod" in output


def test_gunicorn_without_app_env_rejects_a_token_minted_with_the_published_secret(
    gunicorn: GunicornFactory,
) -> None:
    server = gunicorn(env={"APP_ENV": None})  # JWT_SECRET and the rest are set
    assert attack(server.url).status_code == 401
    [started] = [line for line in json_lines(server.output()) if line["message"] == "app started"]
    assert started["env"] == "prod"


def test_python_app_py_signs_with_its_own_generated_secret_never_a_published_one(
    app_env: dict[str, str], tmp_path: Path
) -> None:
    """``python app.py`` without APP_ENV (dev) on loopback, no JWT_SECRET or ENCRYPTION_KEY:
    it used to sign with the default printed in the repository, so anyone could mint an admin
    token for it. Now it generates its secrets into DEVDATA_DIR once and keeps them."""
    devdata = tmp_path / "devdata"
    env: dict[str, str | None] = {
        **app_env,
        "APP_ENV": None,
        "JWT_SECRET": None,
        "ENCRYPTION_KEY": None,
        "DEVDATA_DIR": str(devdata),
    }
    first = DevelopmentServer(env, tmp_path / "first.log")
    try:
        first.wait_ready()
        assert attack(first.url).status_code == 401  # the forged admin is refused
        pair = login_over_http(first.url)
    finally:
        first.stop()
    stored = devdata / "dev-secrets.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert set(json.loads(stored.read_text())) == {"JWT_SECRET", "ENCRYPTION_KEY"}

    again = DevelopmentServer(env, tmp_path / "again.log")  # the same secret after a restart
    try:
        again.wait_ready()
        me = requests.get(
            f"{again.url}/userauth/me",
            headers={"Authorization": f"Bearer {pair['access_token']}"},
            timeout=10,
        )
        assert me.status_code == 200, me.text
    finally:
        again.stop()


@pytest.mark.parametrize("env", ["dev", "test", "prod"])
def test_no_environment_starts_with_a_secret_printed_in_the_repository(
    app_env: dict[str, str], env: str
) -> None:
    environ = {
        **os.environ,
        **app_env,
        "APP_ENV": env,
        "HOST": "127.0.0.1",  # loopback too
        "PORT": "0",
        "JWT_SECRET": FORMER_DEV_JWT_SECRET,
    }
    result = subprocess.run(
        [sys.executable, "app.py"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "JWT_SECRET holds a value published in this repository" in result.stderr
    assert FORMER_DEV_JWT_SECRET not in result.stderr


def login_over_http(url: str) -> dict[str, Any]:
    uid = uuid.uuid4().hex[:8]
    user = {"email": f"d{uid}@example.com", "username": f"d_{uid}", "password": "long-password-1"}
    assert requests.post(f"{url}/public/register", json=user, timeout=30).status_code == 201
    answer = requests.post(
        f"{url}/public/login",
        json={"email": user["email"], "password": user["password"]},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    pair: dict[str, Any] = answer.json()
    return pair


def test_password_hashing_does_not_stall_the_gevent_worker(gunicorn: GunicornFactory) -> None:
    """A login flood from a few clients (argon2 at 4x the default cost) must not hold up
    the worker's other requests: compare two medians of one run, logins vs /health/live."""
    server = gunicorn(env={"ARGON2_TIME_COST": "8", "ARGON2_MEMORY_COST": "19456"})
    uid = uuid.uuid4().hex[:8]
    user = {"email": f"h{uid}@example.com", "username": f"h_{uid}", "password": "long-password-1"}
    assert requests.post(f"{server.url}/public/register", json=user, timeout=30).status_code == 201
    credentials = {"email": user["email"], "password": user["password"]}
    stop = threading.Event()
    login_times: list[float] = []
    failures: list[str] = []

    def flood() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                began = time.perf_counter()
                answer = session.post(f"{server.url}/public/login", json=credentials, timeout=30)
                if answer.status_code != 200:
                    failures.append(answer.text)
                    stop.set()
                login_times.append(time.perf_counter() - began)

    floods = [threading.Thread(target=flood) for _ in range(3)]
    for thread in floods:
        thread.start()
    live_times: list[float] = []
    try:
        with requests.Session() as session:
            while (len(live_times) < 20 or len(login_times) < 6) and not stop.is_set():
                began = time.perf_counter()
                assert session.get(f"{server.url}/health/live", timeout=30).status_code == 200
                live_times.append(time.perf_counter() - began)
                time.sleep(0.02)
    finally:
        stop.set()
        for thread in floods:
            thread.join(timeout=60)
    assert not failures, failures[0]
    live, logins = statistics.median(live_times), statistics.median(login_times)
    # On the event loop every /health/live would wait for the hashes in progress.
    assert live < logins / 4, (live, logins)
