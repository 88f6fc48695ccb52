"""The ``tracing`` layer of the HTTP stack: one server span per request (tracing on only).

Outermost, so every other layer (admission and its limiter call, the view, the stores) runs
inside it and every log line of the request carries its ids. An incoming W3C ``traceparent``
(the propagators of ``OTEL_PROPAGATORS``, W3C trace context and baggage by default) is
continued. The span is named ``METHOD route`` after the URL rule, never the raw path; its
attributes are the method, the route, the status, the problem code, the request id and the
caller's kind. No header, query string or body is recorded. A recorded request answers with
``traceresponse: 00-<trace id>-<span id>-01`` (W3C Trace Context level 2), so the client can
quote its trace and gunicorn's access log line carries the ids too.
"""

from __future__ import annotations

from flask import Response, g, request
from opentelemetry import context, propagate, trace
from opentelemetry.trace import SpanKind, StatusCode

from core.errors import ApiError
from core.http.pipeline import Layer
from core.managers import spans
from core.managers.metrics import UNMATCHED

#: The response header naming the request's trace (W3C Trace Context level 2).
TRACERESPONSE = "traceresponse"


def layer(tracer: trace.Tracer | None) -> Layer | None:
    """The layer, or None while tracing is off (the stack then has no tracing code)."""
    if tracer is None:
        return None

    def before() -> None:
        rule = request.url_rule
        route = rule.rule if rule is not None else UNMATCHED
        parent = propagate.extract(request.headers)
        current = tracer.start_span(
            f"{request.method} {route}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": request.method, "http.route": route},
        )
        g._trace_span = current
        g._trace_token = context.attach(trace.set_span_in_context(current, parent))

    def after(response: Response) -> None:
        current = g.get("_trace_span")
        if current is None:
            return
        current.set_attribute("http.response.status_code", response.status_code)
        current.set_attribute(spans.PRINCIPAL_KIND, spans.principal_kind(g.get("principal")))
        request_id = g.get("request_id")
        if request_id:
            current.set_attribute(spans.REQUEST_ID, request_id)
        if response.status_code >= 500:
            current.set_status(StatusCode.ERROR)
        ids = current.get_span_context()
        if ids.trace_flags.sampled:  # W3C Trace Context level 2; the access log reads it
            response.headers[TRACERESPONSE] = (
                f"00-{ids.trace_id:032x}-{ids.span_id:016x}-{int(ids.trace_flags):02x}"
            )

    def failed(error: ApiError) -> None:
        current = g.get("_trace_span")
        if current is not None:
            spans.failed(current, error.code, error.status)

    def finished() -> None:
        current, token = g.pop("_trace_span", None), g.pop("_trace_token", None)
        if current is not None:
            current.end()
        if token is not None:
            context.detach(token)

    return Layer("tracing", before=before, after=after, failed=failed, finished=finished)
