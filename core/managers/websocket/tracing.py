"""Spans of the Socket.IO side (tracing on only): installed on one WebSocketManager.

- **connect and events**: every handler python-socketio dispatches (``connect`` and each
  event; not ``disconnect``) runs in a server span ``socketio <event>`` with the event name,
  the caller's kind and, when the connect is refused or the ack is an error, its code. It
  wraps the server's dispatch, so it holds for every event however it was declared.
- **fan-out**: an emit is a producer span ``socketio publish <event>``; the message the queue
  (or the room log, for room messages) publishes to every instance through Redis carries its
  W3C trace context, and every
  instance's delivery to its local clients is a consumer span ``socketio deliver <event>``
  under it. One trace shows the sender's event, the publish and each instance's delivery.

Payloads, tokens and room contents are never attributes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import socketio
from opentelemetry import propagate
from opentelemetry.trace import SpanKind, Tracer

from core.managers import spans

#: Dispatched events that get no span of their own.
UNTRACED = frozenset({"disconnect"})


def install(server: socketio.Server, tracer: Tracer) -> None:
    """Trace the connects and events ``server`` dispatches (the queue's ``tracer`` traces
    the fan-out: :class:`core.managers.websocket.queue.RedisQueue`)."""
    server._trigger_event = traced_dispatch(server._trigger_event, tracer)


def traced_dispatch(trigger: Callable[..., Any], tracer: Tracer) -> Callable[..., Any]:
    def dispatch(event: str, namespace: str, *args: Any) -> Any:
        if event in UNTRACED:
            return trigger(event, namespace, *args)
        attributes = {spans.EVENT: event, "socketio.namespace": namespace}
        with spans.span(tracer, f"socketio {event}", attributes, SpanKind.SERVER) as current:
            try:
                answer = trigger(event, namespace, *args)
            except socketio.exceptions.ConnectionRefusedError as exc:
                code = str(getattr(exc, "error_args", {}).get("code", "CONNECT_REFUSED"))
                current.set_attribute(spans.PRINCIPAL_KIND, "anonymous")
                spans.failed(current, code, 400)
                raise
            current.set_attribute(spans.PRINCIPAL_KIND, "user")  # sockets are users'
            if isinstance(answer, dict) and answer.get("ok") is False:
                spans.failed(current, str(answer.get("error", {}).get("code", "ERROR")), 400)
            return answer

    return dispatch


def publish_span(tracer: Tracer, event: str) -> Any:
    """The producer span of one emit (current while the message is published)."""
    return spans.span(tracer, f"socketio publish {event}", {spans.EVENT: event}, SpanKind.PRODUCER)


def deliver_span(tracer: Tracer, message: dict[str, Any], instance: str) -> Any:
    """The consumer span of delivering ``message`` here, under the context it carries (a
    message from another instance) or the current one (this instance's own emit)."""
    carrier = message.get("trace")
    parent = propagate.extract(carrier) if isinstance(carrier, dict) else None
    event = str(message.get("event", ""))
    return tracer.start_as_current_span(
        f"socketio deliver {event}",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes={spans.EVENT: event, "socketio.instance": instance},
        record_exception=False,
    )


def trace_context() -> dict[str, str]:
    """The current trace context as W3C headers (``traceparent``, ...)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def with_trace_context(message: dict[str, Any]) -> dict[str, Any]:
    """``message`` plus the current trace context, for the other instances."""
    carrier = trace_context()
    return {**message, "trace": carrier} if carrier else message
