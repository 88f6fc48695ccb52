"""The metrics on their own port (``METRICS_PORT``): a small threaded WSGI server.

It serves ``/metrics`` of one registry and nothing else. Every request is first admitted by
``admit(environ)``, which the HTTP floor gives it (:func:`core.http.metrics.port_admission`:
the one admission function, with the bearer ``METRICS_TOKEN`` when set, prod requiring it with
this port, and the ``ip`` rate level's limits and bans), so guessing the token is limited and
banned like any request, and a banned address is refused whatever it presents. Under
gunicorn's gevent worker its threads are greenlets, like everything else in the worker.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from core.edge.problems import REQUEST_ID_HEADER, request_id_of, wsgi_problem
from core.errors import ApiError, NotFound, StartupError

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

logger = logging.getLogger(__name__)

#: The one path served, on the app's port too.
SCRAPE_PATH = "/metrics"
#: ``admit(environ)``: raises the ApiError that refuses the request (401, 429, 503...).
Admit = Callable[["WSGIEnvironment"], None]


class MetricsServer:
    """Serves ``registry`` on ``host:port`` from a daemon thread between start() and stop()."""

    def __init__(
        self,
        registry: CollectorRegistry,
        host: str,
        port: int,
        admit: Admit,
    ) -> None:
        self.host = host
        self.app = metrics_only(make_wsgi_app(registry), admit)
        self._port = port
        self._server: ThreadingWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int | None:
        """The port listened on (the kernel's choice for port 0); None when not running."""
        return self._server.server_port if self._server is not None else None

    def start(self) -> None:
        """Bind and serve; a port that cannot be bound is a StartupError naming the setting."""
        server_class = _IPv6Server if ":" in self.host else ThreadingWSGIServer
        try:
            server = make_server(
                self.host, self._port, self.app, server_class, handler_class=_QuietHandler
            )
        except OSError as exc:
            raise StartupError(
                f"cannot serve metrics on {self.host}:{self._port} (METRICS_PORT): {exc.strerror}"
            ) from exc
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="metrics-server", daemon=True
        )
        self._thread.start()
        logger.info("serving metrics", extra={"port": server.server_port})

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)


class _IPv6Server(ThreadingWSGIServer):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    """Scrapes are not worth a log line each."""

    def log_message(self, format: str, *args: Any) -> None:
        return


def metrics_only(app: WSGIApplication, admit: Admit) -> WSGIApplication:
    """Serve ``app`` on ``/metrics`` only, to the requests ``admit`` lets in; every answer
    carries ``X-Request-ID`` (the client's when well-formed), as on the app's port."""

    def metrics_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request_id = request_id_of(environ.get("HTTP_X_REQUEST_ID"))
        try:
            admit(environ)
        except ApiError as refused:
            return wsgi_problem(start_response, refused, request_id=request_id)
        if environ.get("PATH_INFO") != SCRAPE_PATH:
            return wsgi_problem(start_response, NotFound("Scrape /metrics."), request_id=request_id)

        def with_request_id(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            return start_response(status, [*headers, (REQUEST_ID_HEADER, request_id)], exc_info)

        return app(environ, with_request_id)

    return metrics_app
