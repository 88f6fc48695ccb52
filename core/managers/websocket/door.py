"""The Engine.IO door: what an Engine.IO connection must pass before engine.io accepts it, and
the end of the TCP connection of a websocket the server closed.

A Socket.IO CONNECT is admitted like an HTTP request (``guard``), but engine.io accepts the
transport before that: on its own, a client could open websockets (or polling sessions) that
never send the CONNECT, ignore the close frame the handshake reaper sends them, and keep the
TCP connection. One address filled a gunicorn worker's ``worker_connections`` that way, and
``/health/live`` stopped answering (issue 22). So, as WSGI middleware in front of engine.io:

- **Opening** (a ``/socket.io/`` request without ``sid``, polling or websocket) is admitted
  first: at most ``SOCKETIO_MAX_CONNECTIONS_PER_IP`` open Engine.IO connections per client
  address on this instance (429 ``TOO_MANY_CONNECTIONS``),
  at most :attr:`EngineIODoor.capacity` in all (503 ``AT_CAPACITY``: the worker's
  ``worker_connections`` minus ``SOCKETIO_CONNECTION_RESERVE``, so plain HTTP requests and
  health probes always find a free slot), and the ``ip`` rate level with its bans (the
  limiter's one round trip; maintenance stays with the Socket.IO CONNECT, whose
  ``connect_error`` carries its message to clients). A refusal is a problem document and
  the refused connection is closed after it (not left as an idle keep-alive). Whatever else
  fails while admitting (a store the admission needs, a bug) goes through the one error
  mapper, :func:`~core.edge.problems.api_error`: logged once with the refusal's request id,
  answered as its problem (503 ``DEPENDENCY_UNAVAILABLE``, 500 ``INTERNAL_ERROR``), counted
  like any refusal, never a bare 500 from the server. The client address is the
  trusted-proxy one (ProxyFix runs before).
- The slot is reserved before engine.io runs (concurrent opens cannot overshoot), becomes the
  connection's when engine.io accepts it, and is given back when engine.io closes it.
- **Closing**: when engine.io closes a websocket connection (the reaper, the token sweep, a
  ping timeout, the client), its TCP socket is shut down ``SOCKETIO_CLOSE_GRACE`` seconds
  later unless the client closed it first: a client that ignores the close frame no longer
  keeps the connection (and its greenlet) for gunicorn's keep-alive and beyond.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from core.edge.problems import DependencyOf, api_error, request_id_of, wsgi_problem
from core.errors import ApiError, ServiceUnavailable, TooManyRequests

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

logger = logging.getLogger(__name__)

#: ``admit(client address)``: raises why an opening is refused (the ``ip`` level).
Admit = Callable[[str], None]
#: ``refused(error)``: told of every refused opening, with the ApiError it was answered with.
Refused = Callable[[ApiError], None]
#: ``spawn(function, *args)``: runs it in the background (a greenlet under gevent).
Spawn = Callable[..., Any]
Handler = Callable[..., Any]

#: environ key of an opening's :class:`_Opening` (a shared object: Flask-SocketIO hands
#: engine.io a copy of the environ).
_OPENING = "python_base_04.eio_opening"
_RAW_SOCKETS = ("gunicorn.socket", "werkzeug.socket")
#: The ``route`` label of an opening's unexpected failure (``http_exceptions_total``).
OPENING_ROUTE = "/socket.io/"


def raw_socket(environ: WSGIEnvironment) -> socket.socket | None:
    """The client's TCP socket of a request, as the server hands it to websocket libraries."""
    for key in _RAW_SOCKETS:
        found = environ.get(key)
        if isinstance(found, socket.socket):
            return found
    return None


class _Opening:
    """An opening in flight: whose slot it holds, and the sid once engine.io accepts it."""

    __slots__ = ("address", "sid")

    def __init__(self, address: str) -> None:
        self.address = address
        self.sid: str | None = None


class EngineIODoor:
    """WSGI middleware in front of engine.io (see the module docstring)."""

    def __init__(
        self,
        app: WSGIApplication | None,
        *,
        per_ip: int,
        close_grace: float,
        admit: Admit,
        spawn: Spawn,
        sleep: Callable[[float], None],
        dependency_of: DependencyOf,
        refused: Refused = lambda error: None,
    ) -> None:
        #: engine.io's WSGI app (set when the app's WSGI stack is built).
        self.app = app
        self.per_ip = per_ip
        self.close_grace = close_grace
        #: Engine.IO connections this instance holds at most; None: no cap (set by the
        #: server from its connection limit, :meth:`limit`).
        self.capacity: int | None = None
        self._admit = admit
        self._spawn = spawn
        self._sleep = sleep
        self._dependency_of = dependency_of
        self._refused = refused
        self._lock = threading.Lock()
        self._open: Counter[str] = Counter()
        self._total = 0
        #: sid -> (address, raw TCP socket of its websocket or None)
        self._sessions: dict[str, tuple[str, socket.socket | None]] = {}

    # -- wiring --------------------------------------------------------------------------

    def limit(self, worker_connections: int, reserve: int) -> None:
        """Cap Engine.IO connections below the server's connection limit, keeping ``reserve``
        of its slots for HTTP requests and health probes."""
        self.capacity = max(worker_connections - reserve, 1)

    def watch(self, on: Callable[[str, Handler], Any], handlers: dict[str, Handler]) -> None:
        """Hook engine.io's ``connect`` and ``disconnect`` (python-socketio's handlers stay
        in charge; ``on``/``handlers`` are the engine.io server's)."""
        connect, disconnect = handlers["connect"], handlers["disconnect"]

        def accepted(sid: str, environ: WSGIEnvironment) -> Any:
            answer = connect(sid, environ)
            if answer is None or answer is True:
                self._accepted(sid, environ)
            return answer

        def closed(sid: str, *args: Any) -> Any:
            try:
                return disconnect(sid, *args)
            finally:
                self._closed(sid)

        on("connect", accepted)
        on("disconnect", closed)

    # -- the door ------------------------------------------------------------------------

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self.app is None:
            raise RuntimeError("EngineIODoor: no engine.io app to guard")
        query = parse_qs(environ.get("QUERY_STRING", ""))
        sid = query.get("sid", [None])[0]
        if sid is not None:
            if query.get("transport", [""])[0] == "websocket":  # a polling session upgrades
                self._bind(sid, raw_socket(environ))
            return self.app(environ, start_response)
        address = str(environ.get("REMOTE_ADDR") or "unknown")
        try:
            self._reserve(address)
        except Exception as exc:  # noqa: BLE001 - the error mapper logs what is unexpected
            request_id = request_id_of(environ.get("HTTP_X_REQUEST_ID"))
            refusal = api_error(exc, self._dependency_of, request_id=request_id, door="engine.io")
            self._refused(refusal)
            return _refuse(environ, start_response, refusal, request_id)
        opening = environ[_OPENING] = _Opening(address)
        try:
            return self.app(environ, start_response)
        finally:
            if opening.sid is None:  # engine.io did not take it: give the slot back
                self._release(address)

    def _reserve(self, address: str) -> None:
        with self._lock:
            if self.capacity is not None and self._total >= self.capacity:
                raise ServiceUnavailable(
                    "This instance holds as many connections as it can; retry shortly.",
                    code="AT_CAPACITY",
                    headers={"Retry-After": "5"},
                )
            if self._open[address] >= self.per_ip:
                raise TooManyRequests(
                    "Too many open connections from this address; close one first.",
                    code="TOO_MANY_CONNECTIONS",
                    retry_after=5,
                )
            self._open[address] += 1
            self._total += 1
        try:
            self._admit(address)  # the ip level and its bans (may wait on Redis)
        except BaseException:
            self._release(address)
            raise

    def _release(self, address: str) -> None:
        with self._lock:
            self._open[address] -= 1
            if self._open[address] <= 0:
                del self._open[address]
            self._total -= 1

    def _accepted(self, sid: str, environ: WSGIEnvironment) -> None:
        opening = environ.get(_OPENING)
        if not isinstance(opening, _Opening):  # not through the door
            return
        opening.sid = sid
        websocket = environ.get("HTTP_UPGRADE", "").lower() == "websocket"
        with self._lock:
            self._sessions[sid] = (opening.address, raw_socket(environ) if websocket else None)

    def _bind(self, sid: str, sock: socket.socket | None) -> None:
        with self._lock:
            known = self._sessions.get(sid)
            if known is not None and sock is not None:
                self._sessions[sid] = (known[0], sock)

    def _closed(self, sid: str) -> None:
        with self._lock:
            session = self._sessions.pop(sid, None)
        if session is None:
            return
        address, sock = session
        self._release(address)
        if sock is not None:
            self._spawn(self._shut_after_grace, sock)

    def _shut_after_grace(self, sock: socket.socket) -> None:
        """Shut a closed websocket's TCP connection down unless its client did already."""
        self._sleep(self.close_grace)
        if sock.fileno() == -1:  # closed on our side already (the client answered)
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:  # the client closed it meanwhile
            return
        logger.info("websocket connection shut after its close grace")

    # -- observing -----------------------------------------------------------------------

    def open_connections(self, address: str | None = None) -> int:
        """Engine.IO connections held (or reserved) now, of ``address`` or in all."""
        with self._lock:
            return self._total if address is None else self._open[address]


def _refuse(
    environ: WSGIEnvironment, start_response: StartResponse, refusal: ApiError, request_id: str
) -> Iterable[bytes]:
    """The refusal as a problem document; then the connection is closed, not kept alive
    (gunicorn ignores an application's ``Connection`` header, so its socket is shut)."""
    body = wsgi_problem(
        start_response, refusal, request_id=request_id, headers=[("Connection", "close")]
    )
    return _ThenShut(body, raw_socket(environ))


class _ThenShut:
    """A response body whose ``close()`` (called by the server once it is sent) shuts the
    client's connection down."""

    def __init__(self, body: list[bytes], sock: socket.socket | None) -> None:
        self._body = body
        self._sock = sock

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        if self._sock is not None and self._sock.fileno() != -1:
            with contextlib.suppress(OSError):  # the client is gone already
                self._sock.shutdown(socket.SHUT_RDWR)
