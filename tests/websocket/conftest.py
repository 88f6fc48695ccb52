"""Socket.IO fixtures: served apps and real clients, all closed after the test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from flask.testing import FlaskClient

from core.testing import AppFactory, Client, serving
from modules.auth.testing import user_with_tokens

FAST = {
    "SOCKETIO_PING_INTERVAL": "0.5",
    "SOCKETIO_PING_TIMEOUT": "1",
    "SOCKETIO_SWEEP_INTERVAL": "0.2",
}


@pytest.fixture
def serve(make_app: AppFactory) -> Iterator[Callable[..., tuple[Any, str]]]:
    """``serve(overrides) -> (app, url)``: an app on a real server (threading mode)."""
    with ExitStack() as stack:

        def factory(overrides: dict[str, str] | None = None) -> tuple[Any, str]:
            app = make_app({**FAST, **(overrides or {})})
            return app, stack.enter_context(serving(app))

        yield factory


class Person:
    """A registered user with a connected socket."""

    def __init__(self, http: FlaskClient, url: str, make_client: Callable[[], Client]) -> None:
        self.user, self.tokens = user_with_tokens(http)
        self.id = self.user["id"]
        self.socket = make_client()
        self.socket.connect(url, self.tokens["access_token"])

    def call(self, event: str, data: Any = None) -> Any:
        return self.socket.call(event, data)


@pytest.fixture
def person(socket_clients: Callable[[], Client]) -> Callable[[Any, str], Person]:
    def factory(app: Any, url: str) -> Person:
        return Person(app.test_client(), url, socket_clients)

    return factory
