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
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import engineio
from flask import Flask

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
