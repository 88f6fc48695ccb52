"""SIGTERM while clients are sending requests: no request that was accepted fails.

**Accepted**, precisely: the client's TCP ``connect()`` to the server's port succeeded and the
whole request was written (``sendall`` returned). Every accepted request must get a complete
HTTP response: a status line, headers, and exactly ``Content-Length`` body bytes, with the
status the route answers normally (200). A request whose ``connect()`` is refused
(``ECONNREFUSED``: the listener is closed) was not accepted: that is how a stopped server says
no, and a client or load balancer retries it elsewhere. Anything else after the request was
sent (a reset, an early EOF, a truncated body, a timeout of ``CLIENT_TIMEOUT``) fails the
test.

Each request is sent on a fresh connection (``Connection: close``), so no request ever rides
on an idle keep-alive connection the server is entitled to close. The server runs as in
production (``gunicorn -c gunicorn.conf.py app:app``, one gevent worker) and as the
development server (``python app.py``), against the real test servers; client threads send a
mix of a public action, a JWT route, a slow route (in flight when the signal lands) and
``/health/live`` back to back, before, during and after the drain, until the port refuses
them.

Nothing here assumes an idle machine, so there is no retry: the servers get 90 s to become
ready (a 20 s bound once failed a setup on a busy machine, and left its gunicorn running);
the traffic is counted (40 complete requests before the signal), not timed; a client thread
the scheduler holds back only sends fewer requests, and one that connects after the listener
closed is refused, which is allowed; each request has 10 s (``CLIENT_TIMEOUT``).
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest
import socketio

from core.devstack import wait_for
from tests.production.helpers import DevelopmentServer, Gunicorn
from tests.support.load import Hammer, RawOutcome, raw_request, register_user

THREADS = 6
#: The load never pauses, so the drain never sees zero requests in flight: it ends after this
#: many seconds, and the listener closes while connections are still arriving.
SHUTDOWN_TIMEOUT = "3"
#: Seconds after SIGTERM until clients stop opening new connections (endpoint removal). In
#: Kubernetes the preStop pause comes first; without it a connection can still land in the
#: listen queue between the last accept() and close() and be reset (docs/deploy.md).
LB_REACTION = 1.0
#: In flight from before the signal until well after the load balancer reacted.
LONG_REQUEST = f"/public/probe/slow?seconds={LB_REACTION + 1.5}"
SETTINGS = {
    "SHUTDOWN_TIMEOUT": SHUTDOWN_TIMEOUT,
    "RATE_LIMIT_IP": "100000/second",
    "RATE_LIMIT_USER": "100000/second",
}


class Server(Protocol):
    url: str
    port: int
    proc: subprocess.Popen[bytes]

    def output(self) -> str: ...
    def wait_ready(self) -> None: ...
    def stop(self) -> None: ...


@pytest.fixture(params=["gunicorn", "app.py"])
def server(
    request: pytest.FixtureRequest, app_env: dict[str, str], tmp_path: Path
) -> Iterator[Server]:
    started = start_server(request.param, {**app_env, **SETTINGS}, tmp_path)
    yield started
    started.stop()


def start_server(kind: str, env: dict[str, str | None], log_dir: Path) -> Server:
    if kind == "gunicorn":
        started: Server = Gunicorn(env, log_dir / "gunicorn.log", ())
    else:
        started = DevelopmentServer(env, log_dir / "app.log")
    started.wait_ready()  # stops the process when it never gets ready
    return started


def test_sigterm_under_load_fails_no_accepted_request(server: Server) -> None:
    token = register_user(server.url).access_token
    mix = [
        ("POST", "/actions/system.ping", {}),
        ("GET", "/userauth/me", {"Authorization": f"Bearer {token}"}),
        ("GET", "/public/probe/slow?seconds=0.2", {}),
        ("GET", "/health/live", {}),
    ]

    with Hammer("127.0.0.1", server.port, mix, THREADS) as hammer:
        wait_for(
            lambda: sum(o.result == "complete" for o in hammer.snapshot()) >= 40,
            what="traffic to flow",
        )
        # The drain ends at the first moment no request is in flight, and short requests on
        # fresh connections leave such moments: one long request, accepted before the signal
        # (requests sent after it have completed), keeps the drain, and so the listener, open
        # for the whole load-balancer reaction, as a preStop pause would in Kubernetes.
        long_sent = time.monotonic()
        long_request: list[RawOutcome] = []
        holder = threading.Thread(
            target=lambda: long_request.append(
                raw_request("127.0.0.1", server.port, "GET", LONG_REQUEST)
            )
        )
        holder.start()
        wait_for(
            lambda: (
                sum(o.result == "complete" and o.started > long_sent for o in hammer.snapshot())
                >= 10
            ),
            what="the long request to be accepted",
        )
        signalled = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        # Traffic goes on while readiness answers 503, then stops, as a load balancer stops
        # routing to an endpoint that left the Service; the server is still draining then.
        time.sleep(LB_REACTION)
        hammer.stop()
        code = server.proc.wait(timeout=float(SHUTDOWN_TIMEOUT) + 20)
        holder.join(timeout=10)
    outcomes = hammer.snapshot()
    assert [(o.result, o.status) for o in long_request] == [("complete", 200)], long_request

    assert code == 0, server.output()[-3000:]
    broken = [o for o in outcomes if o.result == "broken"]
    assert not broken, describe(broken, signalled)
    complete = [o for o in outcomes if o.result == "complete"]
    assert all(o.status == 200 for o in complete), [o for o in complete if o.status != 200][:5]
    # The load went on through the drain: requests sent after the signal were answered.
    assert any(o.started > signalled for o in complete), describe(outcomes[-10:], signalled)


def describe(outcomes: list[RawOutcome], signalled: float) -> str:
    return "\n".join(
        f"{o.path} {o.result} {o.status} at {o.started - signalled:+.3f}s"
        f" ({o.ended - o.started:.3f}s) {o.detail}"
        for o in outcomes[:20]
    )


@pytest.mark.parametrize("kind", ["gunicorn", "app.py"])
def test_sigterm_with_a_socket_connected_exits_in_time(
    kind: str, app_env: dict[str, str], tmp_path: Path
) -> None:
    """Socket.IO connections are not waited for (docs/operations.md, "Graceful shutdown"):
    with a client connected and idle, SIGTERM tells it ``server_shutdown`` and the process
    exits 0 within SHUTDOWN_TIMEOUT plus gunicorn's margin (10 s)."""
    server = start_server(kind, {**app_env, **SETTINGS}, tmp_path)
    client = socketio.Client(reconnection=False)
    told = threading.Event()
    client.on("server_shutdown", lambda *_: told.set())
    try:
        token = register_user(server.url).access_token
        client.connect(server.url, auth={"token": token}, transports=["websocket"], wait_timeout=10)
        signalled = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        bound = float(SHUTDOWN_TIMEOUT) + 10
        try:
            code = server.proc.wait(timeout=bound)
        except subprocess.TimeoutExpired:
            code = None
        assert code == 0, (
            f"{kind} still running {time.monotonic() - signalled:.1f}s after SIGTERM"
            f" (exit code {code}); log tail: {server.output()[-1500:]}"
        )
        assert told.wait(5)
    finally:
        if client.connected:
            closer = threading.Thread(target=client.disconnect, daemon=True)
            closer.start()
            closer.join(1)
        server.stop()
