"""``HEALTH_PORT``: liveness answered beside the worker's loop, from the loop's own beat.

``/health/live`` on the app's port is served by the worker's one gevent loop, so during a
reconnect storm a probe waits its turn behind every connection accepted before it (seconds,
docs/performance.md), although the worker is well. A probe that times out three times in a
row gets a healthy pod restarted, and its sockets then storm the other pods.

So, with ``HEALTH_PORT`` set, a thread of the operating system (not a greenlet) answers
``GET /health/live`` on that port, and the loop proves that it turns: a timer of the loop
records the time every :data:`BEAT_INTERVAL` (:class:`LoopBeat`). The thread answers 200
``{"status": "ok", "loop_lag_ms": ...}`` (how late the loop is on its beat) while the lag is
under ``LIVENESS_MAX_LAG``, and 503 ``LOOP_STALLED`` past it: a loop stuck in a call that
never yields stops its beats, so the probe tells the truth without waiting for the loop. The
thread takes the GIL for the few microseconds of an answer, at most every switch interval.

The thread uses the interpreter's own sockets (``_socket``: gevent's monkey-patching does not
reach them), the interpreter's own sleep, and h11 to read the request and write the answer;
nothing in it touches gevent, logging or the app, and no error ends it. One connection at a
time, each request bounded by :data:`READ_TIMEOUT`, and
at most :data:`ANSWERS_PER_SECOND` answers a second (past it a connection is closed
unanswered): the port is for the kubelet, not behind the Service or the Ingress
(docs/deploy.md). Decision 101.
"""

from __future__ import annotations

import _socket
import contextlib
import json
import time
from collections.abc import Callable

import h11

from core.edge.problems import PROBLEM_JSON, REQUEST_ID_HEADER, problem_json, request_id_of
from core.errors import (
    ApiError,
    BadRequest,
    MethodNotAllowed,
    NotFound,
    ServiceUnavailable,
    StartupError,
)

#: Seconds between two beats of the loop.
BEAT_INTERVAL = 0.1
#: Seconds a connection has to send its whole request.
READ_TIMEOUT = 0.5
#: Answers a second, at most; a connection past them is closed unanswered.
ANSWERS_PER_SECOND = 50
#: The one path served.
LIVE_PATH = b"/health/live"
_READ_SIZE = 4096
_MAX_REQUEST = 16 * 1024


class LoopBeat:
    """When the worker's gevent loop last ran a timer callback of its own.

    Outside gevent (the threaded dev server, the CLI) there is no loop to stall: the lag is 0.
    """

    def __init__(self, interval: float = BEAT_INTERVAL) -> None:
        self.interval = interval
        self._last = time.monotonic()
        self._timer: object | None = None

    def start(self) -> None:
        from gevent import get_hub
        from gevent.monkey import is_module_patched

        if self._timer is not None or not is_module_patched("socket"):
            return
        self._last = time.monotonic()
        timer = get_hub().loop.timer(self.interval, self.interval, ref=False)
        timer.start(self._beat)
        self._timer = timer

    def _beat(self) -> None:
        self._last = time.monotonic()

    def lag(self) -> float:
        """Seconds the loop is late on its next beat (0.0 while it keeps time)."""
        if self._timer is None:
            return 0.0
        return max(0.0, time.monotonic() - self._last - self.interval)

    def stop(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.stop()  # type: ignore[attr-defined]
            timer.close()  # type: ignore[attr-defined]


Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


def live_answer(beat: LoopBeat, max_lag: float) -> Callable[[bytes, bytes, str | None], Answer]:
    """``answer(method, target, request_id)``: what the port sends back."""

    def answer(method: bytes, target: bytes, incoming_id: str | None) -> Answer:
        request_id = request_id_of(incoming_id)
        if target.split(b"?", 1)[0] != LIVE_PATH:
            return _problem(NotFound(f"{target.decode('latin-1')} is not served here"), request_id)
        if method not in (b"GET", b"HEAD"):
            return _problem(
                MethodNotAllowed(headers={"Allow": "GET, HEAD"}),
                request_id,
            )
        lag = beat.lag()
        if lag >= max_lag:
            stalled = ServiceUnavailable(
                f"the worker's loop has not turned for {lag:.1f} s",
                code="LOOP_STALLED",
                extra={"loop_lag_ms": round(lag * 1000, 1)},
            )
            return _problem(stalled, request_id)
        body = json.dumps({"status": "ok", "loop_lag_ms": round(lag * 1000, 1)}).encode()
        return 200, _headers(b"application/json", body, request_id), body

    return answer


def _problem(error: ApiError, request_id: str) -> Answer:
    body = problem_json(error, request_id)
    headers = _headers(PROBLEM_JSON.encode(), body, request_id)
    headers += [(name.encode(), value.encode()) for name, value in error.headers.items()]
    return error.status, headers, body


def _headers(content_type: bytes, body: bytes, request_id: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"Content-Type", content_type),
        (b"Content-Length", str(len(body)).encode()),
        (b"Cache-Control", b"no-store"),
        (b"X-Content-Type-Options", b"nosniff"),
        (REQUEST_ID_HEADER.encode(), request_id.encode()),
        (b"Connection", b"close"),
    ]


class LivenessPort:
    """Serves ``answer`` on ``host:port`` from a thread of its own between start() and stop()."""

    def __init__(
        self,
        host: str,
        port: int,
        answer: Callable[[bytes, bytes, str | None], Answer],
        answers_per_second: int = ANSWERS_PER_SECOND,
    ) -> None:
        self.host = host
        self._port = port
        self._answer = answer
        self._rate = float(answers_per_second)
        self._tokens = self._rate
        self._stamp = time.monotonic()
        self._listener: _socket.socket | None = None
        self._sleep: Callable[[float], None] = time.sleep

    @property
    def port(self) -> int | None:
        """The port listened on (the kernel's choice for port 0); None when not running."""
        listener = self._listener
        return int(listener.getsockname()[1]) if listener is not None else None

    def start(self) -> None:
        """Bind and serve; a port that cannot be bound is a StartupError naming the setting."""
        from gevent.monkey import get_original

        family = _socket.AF_INET6 if ":" in self.host else _socket.AF_INET
        listener = _socket.socket(family, _socket.SOCK_STREAM)
        try:
            listener.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
            listener.bind((self.host, self._port))
            listener.listen(64)
        except OSError as exc:
            listener.close()
            raise StartupError(
                f"cannot serve liveness on {self.host}:{self._port} (HEALTH_PORT): {exc.strerror}"
            ) from exc
        self._listener = listener
        # gevent's sleep in a thread of its own would build a hub there (file descriptors
        # it may not have: EMFILE is when this thread sleeps)
        self._sleep = get_original("time", "sleep")
        get_original("_thread", "start_new_thread")(self._serve, (listener,))

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):  # wakes the thread blocked in accept()
                listener.shutdown(_socket.SHUT_RDWR)
            listener.close()

    def _serve(self, listener: _socket.socket) -> None:
        while self._listener is listener:
            try:
                fd, _ = listener._accept()  # type: ignore[attr-defined]
            except OSError:
                if self._listener is not listener:  # stop()
                    return
                self._sleep(0.01)  # EMFILE and the like: do not spin
                continue
            conn = _socket.socket(fileno=fd)
            try:
                if self._spend():
                    self._serve_one(conn)
            except (OSError, h11.ProtocolError):
                pass  # the client went away or sent what h11 cannot answer: close
            except Exception:  # noqa: BLE001, S110 - no logging (gevent's locks); serve on
                pass
            finally:
                conn.close()

    def _spend(self) -> bool:
        """One answer from the budget (a bucket of :data:`ANSWERS_PER_SECOND`)."""
        now = time.monotonic()
        self._tokens = min(self._rate, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def _serve_one(self, conn: _socket.socket) -> None:
        deadline = time.monotonic() + READ_TIMEOUT  # for the whole request, not each read
        http = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_REQUEST)
        try:
            event = http.next_event()
            while event is h11.NEED_DATA:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                conn.settimeout(left)
                http.receive_data(conn.recv(_READ_SIZE))
                event = http.next_event()
        except h11.RemoteProtocolError:
            status, headers, body = _problem(BadRequest("malformed request"), request_id_of(None))
        else:
            if not isinstance(event, h11.Request):
                return
            incoming = next(
                (v.decode("latin-1") for k, v in event.headers if k == b"x-request-id"), None
            )
            status, headers, body = self._answer(event.method, event.target, incoming)
            if event.method == b"HEAD":
                body = b""
        out = http.send(h11.Response(status_code=status, headers=headers)) or b""
        out += (http.send(h11.Data(data=body)) or b"") if body else b""
        out += http.send(h11.EndOfMessage()) or b""
        conn.sendall(out)
