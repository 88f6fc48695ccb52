"""The app as real clients meet it: served by the production server (gunicorn + gevent) and
by the development server (Werkzeug, threading), driven by the official JavaScript client."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from core.testing import AppFactory, serving
from tests.production.helpers import Gunicorn
from tests.support import js_client
from tests.support.js_client import JsClient

#: Fast socket housekeeping, so logout and expiry drop sockets within a fraction of a second.
FAST = {
    "SOCKETIO_PING_INTERVAL": "1",
    "SOCKETIO_PING_TIMEOUT": "2",
    "SOCKETIO_SWEEP_INTERVAL": "0.2",
}

Serve = Callable[..., str]


@pytest.fixture(scope="session")
def node() -> Path:
    """node, with the pinned socket.io-client installed (``npm ci``, cached)."""
    return js_client.install()


@pytest.fixture(params=["gunicorn", "dev"])
def serve(
    request: pytest.FixtureRequest,
    app_env: dict[str, str],
    make_app: AppFactory,
    tmp_path: Path,
) -> Iterator[Serve]:
    """``serve(overrides) -> base URL``: the app on a real server, production or dev."""
    with ExitStack() as stack:
        logs = (tmp_path / f"gunicorn-{n}.log" for n in itertools.count())

        def start(overrides: dict[str, str | None] | None = None) -> str:
            """``overrides``: settings on top of the test's; None unsets one (gunicorn)."""
            settings = {**FAST, **(overrides or {})}
            if request.param == "dev":
                return stack.enter_context(serving(make_app(settings)))
            server = Gunicorn({**app_env, **settings}, next(logs), ())
            stack.callback(server.stop)
            server.wait_ready()
            return server.url

        yield start


@pytest.fixture
def js(node: Path) -> Iterator[Callable[[], JsClient]]:
    """``js() -> JsClient``: a socket.io-client in its own node process, closed afterwards."""
    clients: list[JsClient] = []

    def factory() -> JsClient:
        client = JsClient(node)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()
