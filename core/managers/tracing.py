"""TracingManager: OpenTelemetry traces of one app, exported over OTLP/HTTP.

Off unless an OTLP endpoint is configured (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, ``OTEL_SDK_DISABLED`` not true): then the AppManager
has no TracingManager at all (``app_manager.tracing`` is None), nothing is instrumented and
the request path carries no tracing code (the HTTP stack has no ``tracing`` layer; the rate
limiter and the actions hold ``tracer = None``).

On, it owns a ``TracerProvider`` (never the global one: tests build many apps in a process):
a batch processor and the OTLP/HTTP exporter; the sampler is parent-based with
``TRACING_SAMPLE_RATIO`` for new traces unless ``OTEL_TRACES_SAMPLER`` names another.
What makes spans:

- the HTTP stack's ``tracing`` layer (:mod:`core.http.tracing`): one server span per request,
  continuing an incoming W3C ``traceparent``;
- the rate limiter's one Redis call, each action, Socket.IO connects, events and the
  deliveries of a message fanned out through Redis (their own code, given :attr:`tracer`);
- the maintained instrumentations of the stores: pymongo (command names, never documents),
  psycopg2 (the parameterised SQL, never the values) and redis-py (command names, arguments
  replaced by ``?``), instrumented with this provider while the manager lives.

Every log line written inside a recording span carries ``trace_id`` and ``span_id`` (a filter
on the framework's log handler, installed while tracing is on).

The instrumentations patch libraries process-wide, so one traced app per process (what
production runs: one app per gunicorn worker); :meth:`close` undoes them.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING, Any

from flask import Flask
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.psycopg2 import Psycopg2Instrumentor
from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.util.re import parse_env_headers

from core.log import framework_handler
from core.managers.base import HealthResult, Manager

if TYPE_CHECKING:
    from config.settings import Settings

logger = logging.getLogger(__name__)

#: The instrumentation scope of the framework's own spans.
SCOPE = "python-base-04"
#: How long close() waits for the last spans to be exported.
CLOSE_FLUSH_SECONDS = 2.0


def traces_endpoint(settings: Settings) -> str:
    """Where spans go: the traces URL, or the base URL with ``/v1/traces`` (the OTLP rule)."""
    if settings.otel_exporter_otlp_traces_endpoint:
        return settings.otel_exporter_otlp_traces_endpoint
    base = settings.otel_exporter_otlp_endpoint or ""
    return base.rstrip("/") + "/v1/traces"


def _retarget_pymongo(provider: TracerProvider) -> None:
    """pymongo's instrumentation registers its command listener once per process and, when
    instrumented again, re-enables that listener with the first provider's tracer. A process
    builds one traced app in production; tests build several in turn, so the listener is
    pointed at this app's provider."""
    listener = getattr(PymongoInstrumentor(), "_commandtracer_instance", None)
    if listener is not None and hasattr(listener, "_tracer"):
        listener._tracer = provider.get_tracer("opentelemetry.instrumentation.pymongo")


class NoBackgroundRoots(Sampler):
    """New traces start at a request, an event or a delivery, never at a store call.

    A client span with no parent is background work (the socket sweep and heartbeat, the
    readiness checks, the audit writer): once a second or more per pod, it would bury the
    traces of requests. Everything else goes to ``sampler`` (the ratio).
    """

    def __init__(self, sampler: Sampler) -> None:
        self._sampler = sampler

    def should_sample(
        self,
        parent_context: Any,
        trace_id: int,
        name: str,
        kind: trace.SpanKind | None = None,
        attributes: Any = None,
        links: Any = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        if kind == trace.SpanKind.CLIENT:
            return SamplingResult(Decision.DROP)
        return self._sampler.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"NoBackgroundRoots{{{self._sampler.get_description()}}}"


class TraceIds(logging.Filter):
    """Adds ``trace_id`` and ``span_id`` (hex) to records logged inside a recording span."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid and context.trace_flags.sampled:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        return True


class TracingManager(Manager):
    """The app's tracer provider, exporter and store instrumentations (only when on)."""

    name = "tracing"

    def __init__(self, settings: Settings) -> None:
        sampler: Sampler | None = None
        if not os.environ.get("OTEL_TRACES_SAMPLER"):
            ratio = TraceIdRatioBased(settings.tracing_sample_ratio)
            sampler = ParentBased(NoBackgroundRoots(ratio))
        headers = parse_env_headers(settings.otel_exporter_otlp_headers or "", liberal=True)
        self.endpoint = traces_endpoint(settings)
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": settings.otel_service_name}),
            sampler=sampler,
        )
        self.exporter = OTLPSpanExporter(endpoint=self.endpoint, headers=headers or None)
        self.provider.add_span_processor(BatchSpanProcessor(self.exporter))
        #: What the framework's own spans are made with.
        self.tracer: trace.Tracer = self.provider.get_tracer(SCOPE)
        self._instrumentors: list[Any] = []
        for instrumentor in (PymongoInstrumentor(), Psycopg2Instrumentor(), RedisInstrumentor()):
            if not instrumentor.is_instrumented_by_opentelemetry:
                # skip_dep_check: psycopg2-binary is psycopg2 under another distribution name.
                instrumentor.instrument(tracer_provider=self.provider, skip_dep_check=True)
                self._instrumentors.append(instrumentor)
        _retarget_pymongo(self.provider)
        self._log_filter = TraceIds()
        self._handler: logging.Handler | None = None
        self._closed = False
        # The endpoint is not logged: a URL may carry credentials.
        logger.info("tracing on", extra={"sample_ratio": settings.tracing_sample_ratio})

    def init_app(self, app: Flask) -> None:
        """Register, and put the trace ids on the log lines (the app's logging is set up)."""
        super().init_app(app)
        handler = framework_handler()
        if handler is not None and not self._closed:
            handler.addFilter(self._log_filter)
            self._handler = handler

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Export every finished span now (tests, shutdown)."""
        return self.provider.force_flush(int(timeout_s * 1000))

    def health(self) -> HealthResult:
        return {"status": "ok", "latency_ms": 0.0}

    def close(self) -> None:
        """Undo the instrumentations, export what is left, stop the exporter. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for instrumentor in self._instrumentors:
            instrumentor.uninstrument()
        if self._handler is not None:
            self._handler.removeFilter(self._log_filter)
        # Bounded: a collector that is down or hung must not eat the shutdown's margin
        # (gunicorn's graceful_timeout); the exporter's own retries would take 10 s or more.
        # (The SDK's force_flush does not bound an export in progress: a thread does.)
        flusher = threading.Thread(target=self.provider.force_flush, name="otel-flush")
        flusher.start()
        flusher.join(CLOSE_FLUSH_SECONDS)
        if flusher.is_alive():
            self.exporter.shutdown()  # type: ignore[no-untyped-call]  # ends the retry in progress
        self.provider.shutdown()
