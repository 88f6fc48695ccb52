"""What the framework's own spans say, in one place: names, attributes, the outcome.

The OpenTelemetry API only (the SDK is imported by :mod:`core.managers.tracing`, and only
when tracing is on). A span carries the route, action or event name, the status or error
code and the kind of caller, never a token, a password, a body or parameters; exceptions are
not recorded (their messages may quote input), only their problem code.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue

from core.edge.principal import Principal

#: Attribute names beyond the OpenTelemetry semantic conventions'.
PRINCIPAL_KIND = "enduser.kind"  # user, api_key or anonymous
ERROR_CODE = "error.type"  # the problem code (RATE_LIMITED, ...)
REQUEST_ID = "request.id"
ACTION = "action.name"
ACTION_OUTCOME = "action.outcome"
EVENT = "socketio.event"
RATE_LIMIT_LEVELS = "rate_limit.levels"
RATE_LIMIT_OUTCOME = "rate_limit.outcome"


def principal_kind(principal: Principal | None) -> str:
    return principal.type if principal is not None else "anonymous"


@contextmanager
def span(
    tracer: Tracer,
    name: str,
    attributes: Mapping[str, AttributeValue],
    kind: SpanKind = SpanKind.INTERNAL,
) -> Iterator[Span]:
    """A current span that records no exception (their text may quote input): the caller
    sets the code with :func:`failed`."""
    with tracer.start_as_current_span(
        name,
        kind=kind,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        yield current


def failed(current: Span, code: str, status: int | None = None) -> None:
    """Mark ``current`` with a problem code; a server error (or no status) is an error."""
    current.set_attribute(ERROR_CODE, code)
    if status is None or status >= 500:
        current.set_status(StatusCode.ERROR)
