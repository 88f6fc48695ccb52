"""MetricsManager: the Prometheus metrics of one app, in the app's own registry.

Every app owns a ``CollectorRegistry`` (never prometheus-client's global one): tests build many
apps in one process without clashing, and a scrape shows exactly this app. Production runs one
gunicorn worker per process (the Socket.IO model), so one process is one registry and one
scrape target; prometheus-client's multiprocess mode is not used (docs/deploy.md, "Metrics").

What the framework records:

    http_requests_total{method,route,status}             core.http.metrics, every request
    http_request_duration_seconds{method,route,status}   histogram, same labels
    http_requests_in_flight                              gauge
    http_exceptions_total{route,exception}               unexpected exceptions (500 / 503)
    auth_failures_total{policy,code}                     every 401 and 403, by problem code
    dependency_up{dependency}, dependency_latency_seconds{dependency}
                                                         the shared readiness checks (one run
                                                         per HEALTH_READY_CACHE_SECONDS)
    health_ready                                         1 when /health/ready answers 200
    redis_memory_used_bytes, redis_memory_max_bytes      Redis' INFO memory, read by the same
                                                         readiness run (max 0 = no maxmemory)
    rate_limit_rejections_total{level,reason}            rate_limit_rejected()
    rate_limit_bans_total{level}                         ban_issued()
    socketio_connections, socketio_connections_limit,   the limit: connections one worker
    socketio_connects_total{outcome},                    holds (gunicorn worker_connections)
    socketio_events_total{event,outcome}, socketio_event_duration_seconds{event}
    actions_total{action,outcome}, action_duration_seconds{action}, audit_rows_dropped_total
    security_events_total{event,outcome}                 security_event() (logins, bans, ...)
    process_* and python_* (CPU, memory, file descriptors, GC)

``route`` is the URL rule (``/userauth/api-keys/<key_id>``), never the raw path; requests that
match no route are ``<unmatched>``. Free-form label values (event and action names, codes) are
capped at :data:`MAX_LABEL_VALUES` distinct values per label, the rest counted as ``<other>``,
so a client inventing event names cannot blow up the series count.

Features add their own metrics with :meth:`counter`, :meth:`gauge` and :meth:`histogram`
(idempotent: the same definition returns the same metric).

With ``METRICS_PORT`` set, the metrics are served on that port by a small WSGI server thread
(:mod:`core.managers.metrics.server`; started on ``app.started``, stopped by :meth:`close`)
instead of the app's ``/metrics``.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client import metrics as prometheus_metrics
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from core.lifecycle import native_lock
from core.managers.base import HealthResult, Manager
from core.managers.metrics.server import Admit, MetricsServer

if TYPE_CHECKING:
    from config.settings import Settings

UNMATCHED = "<unmatched>"
OTHER = "<other>"
#: Distinct values a free-form label may take before new ones are counted as ``<other>``.
MAX_LABEL_VALUES = 200
#: Latency buckets (seconds) for HTTP requests, socket events and actions.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

M = TypeVar("M", bound=MetricWrapperBase)
#: The shared readiness run: whether the process is ready, and each dependency's check.
ReadinessProvider = Callable[[], tuple[bool, Mapping[str, Mapping[str, Any]]]]
#: Redis' memory (used bytes, maxmemory bytes) as last read, or None before the first read.
MemoryProvider = Callable[[], tuple[int, int] | None]


class _BoundedValues:
    """Label values seen so far; past ``limit`` distinct ones, new values become ``<other>``."""

    def __init__(self, limit: int = MAX_LABEL_VALUES) -> None:
        self._limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        with self._lock:
            if len(self._seen) >= self._limit:
                return OTHER
            self._seen.add(value)
        return value


class _DependencyCollector:
    """``health_ready``, ``dependency_up`` and ``dependency_latency_seconds`` from the readiness
    checks, and ``redis_memory_*`` read by the same run.

    Collected at scrape time from the providers, the app's shared readiness run (one run per
    ``HEALTH_READY_CACHE_SECONDS``, bounded by ``HEALTH_CHECK_TIMEOUT``), so the values are
    right whoever scrapes and whether or not anything probes ``/health/ready``.
    """

    def __init__(self) -> None:
        self.readiness: ReadinessProvider | None = None
        self.redis_memory: MemoryProvider | None = None

    def collect(self) -> Iterator[Metric]:
        ready = GaugeMetricFamily("health_ready", "1 when /health/ready answers 200")
        up = GaugeMetricFamily(
            "dependency_up", "1 when the dependency's readiness check passes", labels=["dependency"]
        )
        latency = GaugeMetricFamily(
            "dependency_latency_seconds",
            "Latency of the dependency's last readiness check",
            labels=["dependency"],
        )
        if self.readiness is not None:
            is_ready, checks = self.readiness()
            ready.add_metric([], 1.0 if is_ready else 0.0)
            for name, result in sorted(checks.items()):
                up.add_metric([name], 1.0 if result.get("status") == "ok" else 0.0)
                latency.add_metric([name], float(result.get("latency_ms") or 0.0) / 1000)
        yield ready
        yield up
        yield latency
        # After the readiness run above, which reads them.
        memory = self.redis_memory() if self.redis_memory is not None else None
        if memory is not None:
            used, limit = memory
            yield GaugeMetricFamily(
                "redis_memory_used_bytes", "Redis used_memory (INFO memory)", value=used
            )
            yield GaugeMetricFamily(
                "redis_memory_max_bytes", "Redis maxmemory; 0 = no limit", value=limit
            )

    def describe(self) -> Iterable[Metric]:
        # Declared without running the checks, so registering this collector does no I/O.
        return ()


class _Series:
    """One (method, route, status): observations per latency bucket, their sum, created."""

    __slots__ = ("buckets", "created", "total")

    def __init__(self, size: int) -> None:
        self.buckets = [0] * size
        self.total = 0.0
        self.created = time.time()


class _RequestMetrics:
    """``http_requests_total``, ``http_request_duration_seconds`` and
    ``http_requests_in_flight``, kept in plain counters and exposed at scrape time.

    prometheus_client's metrics take a lock on every update: five per request (the counter,
    the histogram's sum and its bucket, the in-flight gauge up and down), each a cooperative
    lock under gevent. Here each update takes one native lock
    (:func:`core.lifecycle.native_lock`), the request count is the histogram's count (they
    count the same requests), the in-flight gauge reads the count the drain keeps (one count
    of the requests being served, not two: :meth:`MetricsManager.count_in_flight`), and a
    scrape shows exactly what prometheus_client's Counter,
    Histogram and Gauge would: the same families, samples, labels and values, ``_created``
    included unless ``PROMETHEUS_DISABLE_CREATED_SERIES`` is set.
    """

    def __init__(self, buckets: Sequence[float]) -> None:
        bounds = [float(b) for b in buckets]
        if bounds[-1] != math.inf:
            bounds.append(math.inf)
        self._bounds = tuple(bounds)
        self._le = tuple(floatToGoString(b) for b in bounds)  # type: ignore[no-untyped-call]
        self._series: dict[tuple[str, str, int], _Series] = {}
        self._lock = native_lock()
        #: Answers the requests being served: the in-flight count the drain keeps
        #: (:attr:`core.lifecycle.Lifecycle.requests`), one count for both.
        self.in_flight: Callable[[], int] = lambda: 0

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        series = self._series.get(key)
        if series is None:  # the label values are bounded: methods, route templates, statuses
            series = self._series.setdefault(key, _Series(len(self._bounds)))
        index = bisect.bisect_left(self._bounds, seconds)  # the first bound >= seconds
        with self._lock:
            series.buckets[index] += 1
            series.total += seconds

    def collect(self) -> Iterator[Metric]:
        # PROMETHEUS_DISABLE_CREATED_SERIES, as prometheus_client reads it for its own metrics
        created = getattr(prometheus_metrics, "_use_created", True)
        requests = Metric("http_requests", "HTTP requests", "counter")
        duration = Metric(
            "http_request_duration_seconds", "HTTP request latency until the response", "histogram"
        )
        for (method, route, status), series in list(self._series.items()):
            labels = {"method": method, "route": route, "status": str(status)}
            with self._lock:
                counts, total = list(series.buckets), series.total
            count = 0.0
            for le, observed in zip(self._le, counts, strict=True):
                count += observed
                duration.add_sample(f"{duration.name}_bucket", {**labels, "le": le}, count)
            requests.add_sample("http_requests_total", labels, count)
            if created:
                requests.add_sample("http_requests_created", labels, series.created)
            duration.add_sample(f"{duration.name}_count", labels, count)
            duration.add_sample(f"{duration.name}_sum", labels, total)
            if created:
                duration.add_sample(f"{duration.name}_created", labels, series.created)
        yield requests
        yield duration
        yield GaugeMetricFamily(
            "http_requests_in_flight", "HTTP requests being served", value=self.in_flight()
        )

    def describe(self) -> Iterable[Metric]:
        # The names only: the registry then refuses a second metric of the same name.
        yield Metric("http_requests", "HTTP requests", "counter")
        yield Metric("http_request_duration_seconds", "", "histogram")
        yield GaugeMetricFamily("http_requests_in_flight", "")


class MetricsManager(Manager):
    """Prometheus metrics of one app; ``app.extensions["metrics"]``, ``app_manager.metrics``."""

    name = "metrics"

    def __init__(self, settings: Settings) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.port = settings.metrics_port
        self.host = settings.host
        self._lock = threading.Lock()
        self._defined: dict[str, tuple[type[MetricWrapperBase], tuple[str, ...]]] = {}
        self._metrics: dict[str, MetricWrapperBase] = {}
        self._server: MetricsServer | None = None
        self._closed = False

        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self._dependencies = _DependencyCollector()
        self.registry.register(self._dependencies)

        self._requests = _RequestMetrics(LATENCY_BUCKETS)
        self.registry.register(self._requests)
        self.http_exceptions = self.counter(
            "http_exceptions_total", "Unexpected exceptions raised by views", ("route", "exception")
        )
        self.auth_failures = self.counter(
            "auth_failures_total", "401 and 403 answers by problem code", ("policy", "code")
        )
        self.rate_limit_rejections = self.counter(
            "rate_limit_rejections_total",
            "Requests and socket events refused with 429",
            ("level", "reason"),
        )
        self.rate_limit_bans = self.counter(
            "rate_limit_bans_total",
            "Bans issued to identifiers that kept hitting limits",
            ("level",),
        )
        self.rate_limiter_redis_errors = self.counter(
            "rate_limiter_redis_errors_total",
            "Limiter calls that could not reach Redis (the level's fail policy applied)",
        )
        self.socket_connections = self.gauge("socketio_connections", "Connected Socket.IO clients")
        self.socket_connections_limit = self.gauge(
            "socketio_connections_limit",
            "Connections one worker holds (gunicorn worker_connections); 0 = not known",
        )
        self.socket_connects = self.counter(
            "socketio_connects_total",
            "Socket.IO connection attempts by outcome (accepted or the refusal code)",
            ("outcome",),
        )
        self.socket_events = self.counter(
            "socketio_events_total", "Socket.IO events handled", ("event", "outcome")
        )
        self.socket_event_duration = self.histogram(
            "socketio_event_duration_seconds", "Socket.IO event handling time", ("event",)
        )
        self.actions = self.counter("actions_total", "Action executions", ("action", "outcome"))
        self.action_duration = self.histogram(
            "action_duration_seconds", "Action execution time", ("action",)
        )
        self.audit_rows_dropped = self.counter(
            "audit_rows_dropped_total", "Audit rows dropped because the write queue was full"
        )
        self.security_events = self.counter(
            "security_events_total", "Security events recorded", ("event", "outcome")
        )
        self._codes = _BoundedValues()
        self._events = _BoundedValues()
        self._actions = _BoundedValues()

    # -- defining metrics ------------------------------------------------------------------

    def counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
        """A counter in this app's registry; the same definition returns the same counter."""
        return self._define(Counter, name, documentation, labels)

    def gauge(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Gauge:
        """A gauge in this app's registry; the same definition returns the same gauge."""
        return self._define(Gauge, name, documentation, labels)

    def histogram(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> Histogram:
        """A histogram in this app's registry; the same definition returns the same one."""
        return self._define(Histogram, name, documentation, labels, buckets=tuple(buckets))

    def _define(
        self,
        kind: type[M],
        name: str,
        documentation: str,
        labels: Sequence[str],
        **options: Any,
    ) -> M:
        key = name.removesuffix("_total") if kind is Counter else name
        wanted = (kind, tuple(labels))
        with self._lock:
            existing = self._metrics.get(key)
            if existing is not None:
                if self._defined[key] != wanted:
                    raise ValueError(
                        f"metric {name!r} is already defined as {self._defined[key][0].__name__} "
                        f"with labels {list(self._defined[key][1])}"
                    )
                return existing  # type: ignore[return-value]
            metric = kind(name, documentation, labels, registry=self.registry, **options)
            self._metrics[key] = metric
            self._defined[key] = wanted
            return metric

    # -- what features record ----------------------------------------------------------------

    def count_in_flight(self, requests: Callable[[], int]) -> None:
        """Where ``http_requests_in_flight`` reads the HTTP requests being served: the app's
        in-flight count (:attr:`core.lifecycle.Lifecycle.requests`; :mod:`core.http.metrics`)."""
        self._requests.in_flight = requests

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """One answered HTTP request (called by :mod:`core.http.metrics`)."""
        self._requests.observe(method, route, status, seconds)

    def http_exception(self, route: str, error: BaseException) -> None:
        self.http_exceptions.labels(route, self._codes(type(error).__name__)).inc()

    def auth_failure(self, policy: str, code: str) -> None:
        """A 401/403 answer; ``policy`` is the route's auth policy, ``code`` the problem code."""
        self.auth_failures.labels(policy, self._codes(code)).inc()

    def rate_limit_rejected(self, level: str, reason: str = "limit") -> None:
        """A request or socket event refused with 429; ``reason`` is ``limit`` or ``ban``."""
        self.rate_limit_rejections.labels(level, reason).inc()

    def rate_limiter_redis_error(self) -> None:
        self.rate_limiter_redis_errors.inc()

    def ban_issued(self, level: str) -> None:
        """An identifier of ``level`` (``ip``, ``user``, ``api_key``, ...) was banned."""
        self.rate_limit_bans.labels(level).inc()

    def socket_connected(self) -> None:
        self.socket_connects.labels("accepted").inc()
        self.socket_connections.inc()

    def socket_refused(self, code: str) -> None:
        """A refused connection, by the ``connect_error`` code (``TOKEN_INVALID``, ...)."""
        self.socket_connects.labels(self._codes(code)).inc()

    def socket_capacity(self, limit: int) -> None:
        """The connections this process can hold (sockets and HTTP): gunicorn sets it."""
        self.socket_connections_limit.set(limit)

    def socket_disconnected(self) -> None:
        """An accepted connection ended (call once per :meth:`socket_connected`)."""
        self.socket_connections.dec()

    def socket_event(self, event: str, outcome: str = "ok", seconds: float | None = None) -> None:
        """A handled event; ``outcome`` is ``ok`` or the error code of the ack."""
        name = self._events(event)
        self.socket_events.labels(name, self._codes(outcome)).inc()
        if seconds is not None:
            self.socket_event_duration.labels(name).observe(seconds)

    def action_finished(
        self, action: str, outcome: str = "ok", seconds: float | None = None
    ) -> None:
        """An action execution; ``outcome`` is ``ok`` or the problem code it ended with."""
        name = self._actions(action)
        self.actions.labels(name, self._codes(outcome)).inc()
        if seconds is not None:
            self.action_duration.labels(name).observe(seconds)

    def audit_dropped(self, rows: int = 1) -> None:
        self.audit_rows_dropped.inc(rows)

    def security_event(self, event: str, outcome: str) -> None:
        """A recorded security event (``login.failed``, ``ratelimit.ban``...)."""
        self.security_events.labels(self._events(event), self._codes(outcome)).inc()

    def track_readiness(
        self, readiness: ReadinessProvider, redis_memory: MemoryProvider | None = None
    ) -> None:
        """Where ``health_ready``, ``dependency_*`` and ``redis_memory_*`` come from."""
        self._dependencies.readiness = readiness
        self._dependencies.redis_memory = redis_memory

    # -- exposition ------------------------------------------------------------------------

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The registry in the format the ``Accept`` header asks for, and its content type."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type

    def start_server(self, admit: Admit) -> None:
        """Serve the metrics on ``METRICS_PORT`` in a daemon thread; no-op without the setting.
        ``admit(environ)`` runs first on every request (the app's admission function)."""
        with self._lock:
            if self.port is None or self._server is not None or self._closed:
                return
            server = MetricsServer(self.registry, self.host, self.port, admit)
            server.start()
            self._server = server

    @property
    def server_port(self) -> int | None:
        """The port the metrics server listens on (None when it is not running)."""
        return self._server.port if self._server is not None else None

    # -- manager contract ------------------------------------------------------------------

    def health(self) -> HealthResult:
        return {"status": "ok", "latency_ms": 0.0, "metrics_port": self.server_port}

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            server, self._server = self._server, None
        self._dependencies.readiness = self._dependencies.redis_memory = None
        if server is not None:
            server.stop()
