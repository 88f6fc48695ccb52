"""The development server (``python app.py``): Werkzeug, threaded, with graceful shutdown.

SIGTERM or Ctrl-C: readiness turns 503 at once, in-flight requests finish (at most
``SHUTDOWN_TIMEOUT`` seconds), the listener stops, managers close in reverse order, exit 0.
A second Ctrl-C exits at once. Production uses gunicorn (``gunicorn.conf.py``).
"""

from __future__ import annotations

import errno
import logging
import signal
import socket
import sys
import threading
from types import FrameType

from werkzeug.serving import BaseWSGIServer, make_server

from core.app_manager import AppManager
from core.errors import ConfigurationError, StartupError

logger = logging.getLogger(__name__)


def main() -> int:
    try:
        app = AppManager.create()
    except (ConfigurationError, StartupError) as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 2
    manager: AppManager = app.extensions["app_manager"]
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
    install_signal_handlers(server, manager)
    logger.info(
        "serving",
        extra={"url": f"http://{settings.host}:{server.port}", "env": settings.app_env},
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()
        manager.close()
    return 0


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
