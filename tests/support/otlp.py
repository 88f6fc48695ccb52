"""An OTLP/HTTP trace receiver for tests: what a collector does with the app's exports.

``POST /v1/traces`` with an ``application/x-protobuf`` body (gzip or not) is decoded with the
OpenTelemetry protobuf definitions (``ExportTraceServiceRequest``) into :class:`Span` records;
anything else is refused as a collector would. Started on a free loopback port.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from core.devstack import free_port

SPAN_KINDS = dict(
    enumerate(("unspecified", "internal", "server", "client", "producer", "consumer"))
)
STATUS_CODES = {0: "unset", 1: "ok", 2: "error"}


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {item.key: _value(item.value) for item in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


@dataclass(frozen=True)
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_id: str  # "" for a root span
    kind: str
    status: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope: str

    def child_of(self, other: Span) -> bool:
        return self.trace_id == other.trace_id and self.parent_id == other.span_id


class OtlpReceiver:
    """Collects the spans exported to ``url`` (the app's OTEL_EXPORTER_OTLP_ENDPOINT)."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.content_types: set[str] = set()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    def start(self) -> OtlpReceiver:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                content_type = self.headers.get("Content-Type", "")
                if self.path != "/v1/traces" or content_type != "application/x-protobuf":
                    self.send_response(415 if self.path == "/v1/traces" else 404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                owner._collect(request, content_type)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, name="otlp", daemon=True).start()
        return self

    def _collect(self, request: ExportTraceServiceRequest, content_type: str) -> None:
        found = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    found.append(
                        Span(
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            kind=SPAN_KINDS[span.kind],
                            status=STATUS_CODES[span.status.code],
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            resource=resource,
                            scope=scope_spans.scope.name,
                        )
                    )
        with self._lock:
            self.spans.extend(found)
            self.content_types.add(content_type)

    def wait_for(self, check: Callable[[list[Span]], bool], timeout: float = 15) -> list[Span]:
        """The spans received, once ``check`` holds for them."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                spans = list(self.spans)
            if check(spans):
                return spans
            assert time.monotonic() < deadline, f"spans received: {[s.name for s in spans]}"
            time.sleep(0.05)

    def named(self, name: str) -> list[Span]:
        with self._lock:
            return [span for span in self.spans if span.name == name]

    def clear(self) -> None:
        with self._lock:
            self.spans.clear()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
