"""Socket.IO's WSGI app as served: straight to the Engine.IO server, without per-message
compression.

simple-websocket accepts the ``permessage-deflate`` extension whenever a client offers it
(browsers and socket.io-client always do), and wsproto then keeps a zlib compressor per
connection for its whole life: measured under the gevent worker, 268 KB allocated per idle
socket, most of the worker's memory per socket, and every message of a fan-out compressed
once per member. Socket.IO's own server has declined the extension by default since v3 for
the same reason; chat-sized messages gain little from it. The offer is removed from the
handshake, so the connection is made without it (the protocol's normal outcome when a
server does not support an extension).

Requests under the Engine.IO path go straight to the Engine.IO server: its WSGI middleware
defines a class for every request under gunicorn (an adapter for eventlet, which is not
used here), and for a WebSocket that class lives as long as the connection.

**The WebSocket handshake** (:func:`install_handshake`). simple-websocket rebuilds the HTTP
request from the WSGI environ as text, parses it again with h11, has wsproto validate it and
write the 101 answer through h11, and keeps the h11 connection for the socket's whole life:
about an eighth of a connect's worker CPU in a reconnect storm, and memory per socket. The
server already parsed the request: a well-formed upgrade (the checks wsproto makes: ``GET``,
``Connection: Upgrade``, ``Upgrade: websocket``, ``Sec-WebSocket-Version: 13``, a
``Sec-WebSocket-Key``, a ``Host``) is answered from the environ, and the socket keeps only
wsproto's frame layer; anything else takes the library's own way, so malformed requests
are refused as before.
"""

from __future__ import annotations

import selectors
import socket
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import engineio
import simple_websocket
from engineio.async_drivers._websocket_wsgi import SimpleWebSocketWSGI
from flask import Flask
from wsproto.connection import Connection, ConnectionType
from wsproto.events import Event
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import generate_accept_token

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

#: The WSGI name of the client's ``Sec-WebSocket-Extensions`` offer.
EXTENSIONS_OFFER = "HTTP_SEC_WEBSOCKET_EXTENSIONS"


def socket_app(app: engineio.WSGIApp, flask_app: Flask) -> WSGIApplication:
    """Socket.IO's WSGI app (flask_socketio's, an Engine.IO ``WSGIApp``) as served: Engine.IO
    requests straight to its server with the Flask app in the environ (as flask_socketio's
    middleware puts it there), every WebSocket extension offer declined."""
    handle = app.engineio_app.handle_request
    path = app.engineio_path

    def serve(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        environ.pop(EXTENSIONS_OFFER, None)
        if environ.get("PATH_INFO", "").startswith(path):
            environ["flask.app"] = flask_app
            return handle(environ, start_response)  # type: ignore[no-any-return]
        return app(environ, start_response)  # type: ignore[no-any-return]

    return serve


def _upgrade_key(environ: WSGIEnvironment) -> str | None:
    """The ``Sec-WebSocket-Key`` of a well-formed WebSocket upgrade request (what wsproto
    checks before accepting one), None for anything else."""
    tokens = environ.get("HTTP_CONNECTION", "").lower().split(",")
    if (
        environ.get("REQUEST_METHOD") != "GET"
        or not any(token.strip() == "upgrade" for token in tokens)
        or environ.get("HTTP_UPGRADE", "").lower() != "websocket"
        or environ.get("HTTP_SEC_WEBSOCKET_VERSION") != "13"
        or not environ.get("HTTP_HOST")
    ):
        return None
    key = environ.get("HTTP_SEC_WEBSOCKET_KEY")
    return key if isinstance(key, str) and key else None


class _Frames:
    """What simple-websocket uses of a wsproto ``WSConnection`` once it is open: the frame
    layer alone (no h11 connection kept for the socket's life)."""

    __slots__ = ("connection",)

    def __init__(self) -> None:
        self.connection = Connection(ConnectionType.SERVER)

    def send(self, event: Event) -> bytes:
        return self.connection.send(event)

    def receive_data(self, data: bytes | None) -> None:
        self.connection.receive_data(data)

    def events(self) -> Iterator[Event]:
        return self.connection.events()


class SerialSocket:
    """A websocket's socket whose writes go out one at a time and whole.

    Three writers share a websocket's socket: simple-websocket's reader (pongs, the close),
    engine.io's writer (through :class:`~.frames.Writer`) and the rest of a direct room frame
    (:mod:`.frames`). gevent lets one greenlet at a time wait to write on a socket (a second
    raised ``ConcurrentObjectUseError``, which killed the reader and left the connection
    open for good), and a pong written while a frame was half out landed inside it. Every
    write takes :attr:`lock` and is written whole; everything else is the socket's."""

    def __init__(self, sock: Any) -> None:
        self._raw = sock
        #: Held while a write is going out (gevent's lock in the worker, a thread's elsewhere).
        self.lock = threading.Lock()

    def send(self, data: bytes) -> int:
        with self.lock:
            self._raw.sendall(data)
        return len(data)

    def sendall(self, data: bytes) -> None:
        with self.lock:
            self._raw.sendall(data)

    def sendall_holding(self, data: bytes) -> None:
        """``sendall`` for a writer that holds :attr:`lock` already (the rest of a frame)."""
        self._raw.sendall(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class _Server(simple_websocket.Server):  # type: ignore[misc]
    """simple-websocket's server side with the handshake answered from the environ.

    simple-websocket 1.1 builds a wsproto ``WSConnection`` (an h11 connection and its
    handshake state) before its handshake, for every socket: its ``__init__`` and
    ``Base.__init__`` are done here for a plain upgrade, with the same attributes, and only
    wsproto's frame layer (``tests/websocket/test_handshake.py`` fails if the library's
    instances grow an attribute these do not have). Anything else is the library's own. Either
    way its socket is a :class:`SerialSocket`."""

    sock: Any

    def __init__(
        self,
        environ: WSGIEnvironment,
        subprotocols: Any = None,
        receive_bytes: int = 4096,
        ping_interval: float | None = None,
        max_message_size: int | None = None,
        thread_class: Any = None,
        event_class: Any = None,
        selector_class: Any = None,
    ) -> None:
        key = _upgrade_key(environ)
        mode, sock = _server_socket(environ)
        if key is None or sock is None or subprotocols:  # the library's way and refusals
            super().__init__(
                environ,
                subprotocols=subprotocols,
                receive_bytes=receive_bytes,
                ping_interval=ping_interval,
                max_message_size=max_message_size,
                thread_class=thread_class,
                event_class=event_class,
                selector_class=selector_class,
            )
            # the reader started, but runs once this greenlet yields (a thread reads the
            # attribute at each write)
            self.sock = SerialSocket(self.sock)
            return
        # simple_websocket.Server.__init__
        self.environ = environ
        self.subprotocols: list[str] = []
        self.mode = mode
        # simple_websocket.Base.__init__, its handshake answered from the environ
        self.subprotocol = None
        self.sock = SerialSocket(sock)
        self.receive_bytes = receive_bytes
        self.ping_interval = ping_interval
        self.max_message_size = max_message_size
        self.pong_received = True
        self.input_buffer: list[bytes | str] = []
        self.incoming_message = None
        self.incoming_message_len = 0
        self.connected = False
        self.is_server = True
        self.close_reason = CloseReason.NO_STATUS_RCVD
        self.close_message = None
        self.selector_class = selector_class or selectors.DefaultSelector
        self.event = (event_class or threading.Event)()
        accept = generate_accept_token(key.encode())
        sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        self.ws = _Frames()
        self.connected = True
        self.thread = (thread_class or threading.Thread)(target=self._thread)
        self.thread.name = self.thread.name.replace("(_thread)", "(simple_websocket.Base._thread)")
        self.thread.start()


def _server_socket(environ: WSGIEnvironment) -> tuple[str, socket.socket | None]:
    """The client's socket as simple-websocket finds it under Werkzeug's or gunicorn's server
    (its ``mode``); none under any other."""
    for mode in ("werkzeug", "gunicorn"):
        sock = environ.get(f"{mode}.socket")
        if sock is not None:
            return mode, sock
    return "unknown", None


def install_handshake(eio_server: Any) -> None:
    """Serve ``eio_server``'s WebSockets (an engine.io ``Server`` on simple-websocket) with
    the handshake answered from the environ (see the module docstring)."""
    base = eio_server._async.get("websocket")
    if not (isinstance(base, type) and issubclass(base, SimpleWebSocketWSGI)):
        return  # another WebSocket server: left as it is
    # Engine.IO refuses a message over its limit once all of it has come; engine.io builds
    # its WebSocket with no arguments, so simple-websocket had no limit and held a message
    # without end (an unconnected client's, even). With one it closes with 1009 as soon as
    # a message goes past it.
    limits = {"max_message_size": eio_server.max_http_buffer_size}

    class Accepting(base):  # type: ignore[valid-type,misc]
        def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
            self.ws = _Server(environ, **{**limits, **self.server_args})
            answer = self.app(self)
            if self.ws.mode == "gunicorn":
                raise StopIteration()
            if self.ws.mode == "werkzeug":
                raise ConnectionError()
            return answer

    eio_server._async = {**eio_server._async, "websocket": Accepting}
