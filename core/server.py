"""The development server (``python app.py``): Werkzeug, threaded, with graceful shutdown.

SIGTERM or Ctrl-C: readiness turns 503 at once, in-flight requests finish (at most
``SHUTDOWN_TIMEOUT`` seconds), the listener stops, managers close in reverse order, exit 0.
A second Ctrl-C exits at once. Production uses gunicorn (``gunicorn.conf.py``).
"""

from __future__ import annotations

import errno
import logging
import select
import signal
import socket
import socketserver
import sys
import threading
import time
from types import FrameType

from werkzeug.serving import BaseWSGIServer, make_server

from core.app_manager import AppManager, get_app_manager
from core.errors import ConfigurationError, StartupError
from core.factory import create_app

logger = logging.getLogger(__name__)


def main() -> int:
    try:
        app = create_app()
    except (ConfigurationError, StartupError) as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 2
    with app.app_context():
        manager = get_app_manager()
    settings = manager.settings
    try:
        listener = _listen(settings.host, settings.port)
    except OSError as exc:
        manager.close()
        if exc.errno == errno.EADDRINUSE:
            print(
                f"cannot start: port {settings.port} on {settings.host} is already in use "
                "(set PORT to another port)",
                file=sys.stderr,
            )
            return 2
        raise
    server = make_server(settings.host, settings.port, app, threaded=True, fd=listener.fileno())
    listener.close()  # the server works on a duplicate of it
    # Request threads must finish their response before the process exits; server_close()
    # joins them once the managers (and with them the Socket.IO connections) are closed.
    server.daemon_threads = False  # type: ignore[attr-defined]
    install_signal_handlers(server, manager)
    logger.info(
        "serving",
        extra={"url": f"http://{settings.host}:{server.port}", "env": settings.app_env},
    )
    try:
        # Not Werkzeug's serve_forever: it calls server_close() as it returns, which would
        # join the Socket.IO handler threads before the managers could disconnect them.
        socketserver.BaseServer.serve_forever(server)
    finally:
        _serve_backlog(server)
        server.socket.close()
        manager.lifecycle.wait_idle(settings.shutdown_timeout)
        manager.close()
        server.server_close()
    return 0


def _serve_backlog(server: BaseWSGIServer, quiet: float = 0.05, limit: float = 2.0) -> None:
    """Serve connections the kernel already accepted before the listener closes: closing it
    would reset them although their clients sent a request. Ends after ``quiet`` seconds
    without a new connection, or after ``limit``."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            ready, _, _ = select.select([server.socket], [], [], quiet)
        except (OSError, ValueError):
            return
        if not ready:
            return
        server._handle_request_noblock()  # type: ignore[attr-defined]


def _listen(host: str, port: int) -> socket.socket:
    """Bind the listening socket ourselves: Werkzeug would print its own error and exit 1."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def install_signal_handlers(server: BaseWSGIServer, manager: AppManager) -> None:
    stopping = threading.Event()

    def shut_down() -> None:
        manager.drain()
        server.shutdown()

    def handle(signum: int, frame: FrameType | None) -> None:
        if stopping.is_set():
            if signum == signal.SIGINT:
                raise SystemExit(130)
            return
        stopping.set()
        logger.info("shutdown requested", extra={"signal": signal.Signals(signum).name})
        threading.Thread(target=shut_down, name="shutdown", daemon=True).start()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
