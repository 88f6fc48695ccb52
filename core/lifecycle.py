"""Process lifecycle: in-flight request accounting and the draining flag used on SIGTERM.

On SIGTERM the server marks the process as draining (``/health/ready`` answers 503 at once),
waits for in-flight HTTP requests to finish (bounded by ``SHUTDOWN_TIMEOUT``), and then closes
the managers in reverse order. Long-lived Socket.IO connections are not counted as in flight;
their drain (sockets closed one by one, ``core.managers.websocket.drain``) is, as one piece of
work (``begin``/``end``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


def native_lock() -> Any:
    """A lock of the operating system even under gevent's monkey-patching, where
    ``threading.Lock`` is a cooperative lock costing microseconds per acquisition. Only for a
    critical section that cannot yield (a few additions): no greenlet switch can happen while
    it is held, so no other greenlet of the thread ever waits on it."""
    try:
        from gevent.monkey import get_original
    except ImportError:  # pragma: no cover - gevent is a requirement
        return threading.Lock()
    return get_original("_thread", "allocate_lock")()


class Lifecycle:
    def __init__(self) -> None:
        self.draining = threading.Event()
        self._in_flight = 0
        self._requests = 0
        #: Guards the counts, taken twice per request: a native lock (:func:`native_lock`).
        self._count = native_lock()
        #: For :meth:`wait_idle` only: a request ending takes it only while someone waits.
        self._idle = threading.Condition()
        self._waiting = 0

    @property
    def in_flight(self) -> int:
        """What the drain waits for: HTTP requests and other work (:meth:`begin`)."""
        return self._in_flight

    @property
    def requests(self) -> int:
        """HTTP requests being served (:class:`InFlightMiddleware`): the
        ``http_requests_in_flight`` gauge."""
        return self._requests

    def begin(self) -> None:
        """Work the drain waits for besides requests (the sockets' drain)."""
        with self._count:
            self._in_flight += 1

    def end(self) -> None:
        self._end(0)

    def begin_request(self) -> None:
        with self._count:
            self._in_flight += 1
            self._requests += 1

    def end_request(self) -> None:
        self._end(1)

    def _end(self, requests: int) -> None:
        with self._count:
            self._in_flight -= 1
            self._requests -= requests
            idle = self._in_flight <= 0
        # A waiter counts itself under the condition before it reads the count, so either it
        # reads this end's count or this end sees it waiting and wakes it.
        if idle and self._waiting:
            with self._idle:
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is in flight; False when ``timeout`` ran out first."""
        deadline = time.monotonic() + timeout
        with self._idle:
            self._waiting += 1
            try:
                while self._in_flight > 0:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._idle.wait(remaining)
            finally:
                self._waiting -= 1
        return True


class InFlightMiddleware:
    """WSGI middleware counting requests until their response body is fully sent.

    Requests under ``exclude_prefixes`` are not counted and go to ``excluded_app`` (default:
    ``app``).
    """

    def __init__(
        self,
        app: WSGIApplication,
        lifecycle: Lifecycle,
        exclude_prefixes: tuple[str, ...],
        excluded_app: WSGIApplication | None = None,
    ) -> None:
        self.app = app
        self.lifecycle = lifecycle
        self.exclude_prefixes = exclude_prefixes
        self.excluded_app = excluded_app or app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith(self.exclude_prefixes):
            return self.excluded_app(environ, start_response)
        self.lifecycle.begin_request()
        try:
            body = self.app(environ, start_response)
        except BaseException:
            self.lifecycle.end_request()
            raise
        return _ClosingIterable(body, self.lifecycle.end_request)


class _ClosingIterable:
    def __init__(self, body: Iterable[bytes], on_close: Callable[[], None]) -> None:
        self._body = body
        self._on_close = on_close
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close: Any = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._on_close()
