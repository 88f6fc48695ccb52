"""Real Socket.IO clients against apps served by a real threaded Werkzeug server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import socketio
from flask import Flask
from werkzeug.serving import WSGIRequestHandler, make_server


class _QuietHandler(WSGIRequestHandler):
    """No request log: Werkzeug reads a closing websocket's last frame as a bad request and
    would log it, even after the test session ended."""

    def log(self, type: str, message: str, *args: Any) -> None:
        return


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """Serve ``app`` on a free port in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        thread.join(5)


class Recorder:
    """The server events a client received, in order, and waiting for them."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self._received = threading.Condition()

    def _record(self, event: str, data: Any = None) -> None:
        with self._received:
            self.events.append((event, data))
            self._received.notify_all()

    def wait_for(self, event: str, count: int = 1, timeout: float = 5.0) -> list[Any]:
        """The data of the first ``count`` events named ``event``; fails after ``timeout``."""
        with self._received:
            self._received.wait_for(
                lambda: len([e for e in self.events if e[0] == event]) >= count, timeout
            )
            found = [data for name, data in self.events if name == event]
        assert len(found) >= count, f"expected {count} {event!r}, got {self.events}"
        return found[:count]


class Client(Recorder):
    """A socket.io client that records every server event it receives."""

    def __init__(self) -> None:
        super().__init__()
        self.sio = socketio.Client(reconnection=False)
        self.connect_error: Any = None
        self.disconnected = threading.Event()
        self.sio.on("*", self._record)
        self.sio.on("connect_error", self._on_connect_error)
        self.sio.on("disconnect", lambda *args: self.disconnected.set())

    def _on_connect_error(self, data: Any) -> None:
        self.connect_error = data

    def connect(self, url: str, token: str | None) -> None:
        auth = {"token": token} if token is not None else None
        self.sio.connect(url, auth=auth, transports=["websocket"], wait_timeout=5)

    def call(self, event: str, data: Any = None) -> Any:
        return self.sio.call(event, data, timeout=5)

    def close(self) -> None:
        """Disconnect without waiting for the websocket close handshake: Werkzeug's threaded
        server ends the connection on Engine.IO's close packet, so the client would wait
        3 s for a close frame that never comes."""
        if self.sio.connected:
            closer = threading.Thread(target=self.sio.disconnect, daemon=True)
            closer.start()
            closer.join(0.5)
