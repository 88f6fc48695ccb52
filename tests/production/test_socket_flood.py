"""One address cannot take a pod offline with raw websockets (issue 22 item 1), against gunicorn
with the production worker (``make serve``'s command), a small ``worker_connections`` so the
attack fits a test.

The attack: open more raw Engine.IO websockets than the worker has connections, never send a
Socket.IO CONNECT, ignore every frame the server sends (the reaper's close frame included)
and hold the TCP connections. On main the worker's connections filled up and ``/health/live``
stopped answering (Kubernetes would restart the pod; the attacker repeats).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from modules.auth.testing import PASSWORD
from tests.production.helpers import Gunicorn

WORKER_CONNECTIONS = 100
PER_IP = 20
RESERVE = 30
FLOOD = WORKER_CONNECTIONS + 50
#: The issue asks for answers within 1 s; a loaded test machine gets more room. On main the
#: answer never comes (the worker accepts nothing), so any bound fails there.
ANSWER_WITHIN = 5.0


def open_raw_websocket(port: int, forwarded_for: str | None = None) -> tuple[socket.socket, int]:
    """A websocket opening of Engine.IO, nothing more: the socket and the HTTP status."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    forwarded = f"X-Forwarded-For: {forwarded_for}\r\n" if forwarded_for else ""
    sock.sendall(
        (
            "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\n{forwarded}"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n" not in head:
        chunk = sock.recv(1024)
        if not chunk:
            return sock, 0
        head += chunk
    return sock, int(head.split(b" ", 2)[1])


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """Read (never answer) until the server closes the connection, or ``within`` passes."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.05))
        try:
            if not sock.recv(65536):
                return True
        except TimeoutError:
            return False
        except OSError:  # reset: closed too
            return True
    return False


@pytest.fixture
def server(app_env: dict[str, str], tmp_path: Path) -> Iterator[Gunicorn]:
    env: dict[str, str | None] = {
        **app_env,
        "GUNICORN_CMD_ARGS": f"--worker-connections {WORKER_CONNECTIONS}",
        "SOCKETIO_MAX_CONNECTIONS_PER_IP": str(PER_IP),
        "SOCKETIO_CONNECTION_RESERVE": str(RESERVE),
        "SOCKETIO_CONNECT_TIMEOUT": "10",  # the flood is answered before the first is reaped
        "SOCKETIO_SWEEP_INTERVAL": "0.5",
        "SOCKETIO_CLOSE_GRACE": "1",
        "TRUSTED_PROXIES": "1",
        "RATE_LIMIT_IP": "1000/second",
    }
    started = Gunicorn(env, tmp_path / "gunicorn.log", ())
    try:
        started.wait_ready()
        yield started
    finally:
        started.stop()


def user_token(url: str) -> str:
    email = f"flood-{time.monotonic_ns()}@example.com"
    body = {"email": email, "username": f"f_{time.monotonic_ns() % 10**9}", "password": PASSWORD}
    assert requests.post(f"{url}/public/register", json=body, timeout=30).status_code == 201
    credentials = {"email": email, "password": PASSWORD}
    answer = requests.post(f"{url}/public/login", json=credentials, timeout=30)
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


def test_one_address_holding_raw_websockets_cannot_take_the_worker_down(
    server: Gunicorn,
) -> None:
    token = user_token(server.url)
    attacker = "203.0.113.66"
    with ThreadPoolExecutor(max_workers=50) as pool:
        opened = list(pool.map(lambda _: open_raw_websocket(server.port, attacker), range(FLOOD)))
    held = [sock for sock, status in opened if status == 101]
    try:
        statuses = sorted(status for _, status in opened)
        # At most the per-address cap became websockets; every other opening was refused
        # before engine.io (and its connection closed, not left as a keep-alive).
        assert len(held) <= PER_IP, statuses
        assert statuses.count(429) >= FLOOD - PER_IP, statuses
        refused = [sock for sock, status in opened if status == 429]
        assert all(closed_by_server(sock, 10) for sock in refused[:10])

        # While they are held: the probe and a user's request answer.
        live = requests.get(f"{server.url}/health/live", timeout=ANSWER_WITHIN)
        assert live.status_code == 200
        me = requests.get(
            f"{server.url}/userauth/me",
            headers={"Authorization": f"Bearer {token}"},
            timeout=ANSWER_WITHIN,
        )
        assert me.status_code == 200, me.text

        # The reaper's close frame is ignored; the TCP connections are closed anyway.
        assert all(closed_by_server(sock, 40) for sock in held)
        # Their slots are free again: the address may open one more.
        again, status = open_raw_websocket(server.port, attacker)
        again.close()
        assert status == 101
    finally:
        for sock, _ in opened:
            sock.close()


def test_engine_io_connections_stop_short_of_the_workers_connections(server: Gunicorn) -> None:
    """Many addresses (through the trusted proxy): Engine.IO takes at most worker_connections
    minus the reserve; the reserve serves probes and requests."""
    capacity = WORKER_CONNECTIONS - RESERVE
    addresses = [f"198.51.100.{i}" for i in range(1, 6)]  # 5 x 20 = 100 > capacity
    with ThreadPoolExecutor(max_workers=50) as pool:
        opened: list[tuple[socket.socket, Any]] = list(
            pool.map(
                lambda i: open_raw_websocket(server.port, addresses[i % len(addresses)]),
                range(len(addresses) * PER_IP),
            )
        )
    try:
        statuses = [status for _, status in opened]
        assert statuses.count(101) == capacity, sorted(statuses)
        assert statuses.count(503) == len(opened) - capacity, sorted(statuses)
        assert requests.get(f"{server.url}/health/live", timeout=ANSWER_WITHIN).status_code == 200
        ready = requests.get(f"{server.url}/health/ready", timeout=ANSWER_WITHIN)
        assert ready.status_code == 200
    finally:
        for sock, _ in opened:
            sock.close()
