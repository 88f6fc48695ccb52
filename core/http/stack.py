"""The HTTP stack: what runs around every request, in which order, declared once.

:data:`HTTP_STACK` names the layers, outermost first, like ``START_ORDER`` names the managers;
:data:`_BUILDERS` makes each one from the app's managers and tables. :func:`install` registers
ONE before-request hook, ONE after-request hook, ONE teardown and ONE error handler on the app,
each walking the list:

- ``before()``: outermost first; the first that raises stops the rest, and the error path
  answers; one that returns a response answers with it, and no view runs;
- ``after(response)``: innermost first, on every response (problem answers included), as the
  response travels back out;
- ``failed(error)``: outermost first, with the :class:`~core.errors.ApiError` the failure
  answers with (:func:`core.edge.problems.api_error`, the one error mapper); the request's
  ``g.problem`` holds it too, for any later step;
- ``finished()``: outermost first, when the request ends whatever happened.

Nothing here reaches into Flask's internal tables: adding a layer is adding a name and a
builder.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from flask import Flask, Response, g

from core.edge.problems import api_error
from core.http import admission, idempotency, metrics, pipeline, tracing
from core.http.pipeline import Layer
from core.http.problems import problem_response
from core.managers.idempotency import IdempotencyStore

if TYPE_CHECKING:
    from core.app_manager import AppManager
    from core.http.routing import Routing


#: The layers of every request, outermost first (see the module docstring).
HTTP_STACK: tuple[str, ...] = (
    "tracing",  # a server span per request, continuing traceparent (only when tracing is on)
    "request_id",  # X-Request-ID: the client's when well-formed, else a new one; echoed back
    "metrics",  # timing, in-flight, counts, auth failures, unexpected exceptions
    "cors",  # CORS headers for CORS_ORIGINS (only when set)
    "headers",  # security headers and Cache-Control, unless the view set them
    "admission",  # the one admission function: gates, auth, one limiter call, roles/scopes
    "body",  # the JSON body: strict JSON, an object, parsed once
    "idempotency",  # Idempotency-Key on endpoints that opted in: run once, replay the answer
)

Builder = Callable[[Flask, "AppManager", "Routing"], Layer | None]

_BUILDERS: dict[str, Builder] = {
    "tracing": lambda app, manager, routing: tracing.layer(manager.tracer),
    "request_id": lambda app, manager, routing: pipeline.request_id_layer(),
    "metrics": lambda app, manager, routing: metrics.layer(manager.metrics),
    "cors": lambda app, manager, routing: pipeline.cors_layer(app, manager.settings),
    "headers": lambda app, manager, routing: pipeline.headers_layer(),
    "admission": lambda app, manager, routing: admission.layer(manager.admission, routing),
    "body": lambda app, manager, routing: pipeline.body_layer(),
    "idempotency": lambda app, manager, routing: idempotency.layer(
        IdempotencyStore(manager.redis, manager.settings.idempotency_ttl)
    ),
}


def layers(app: Flask, manager: AppManager, routing: Routing) -> list[Layer]:
    """The layers of :data:`HTTP_STACK` for one app (a builder may answer None: not used)."""
    built = (_BUILDERS[name](app, manager, routing) for name in HTTP_STACK)
    return [layer for layer in built if layer is not None]


def install(app: Flask, manager: AppManager, routing: Routing) -> list[Layer]:
    """Register the stack's hooks and its error handler on ``app``; returns the layers."""
    stack = layers(app, manager, routing)
    befores = [layer.before for layer in stack if layer.before is not None]
    afters = [layer.after for layer in reversed(stack) if layer.after is not None]
    observers = [layer.failed for layer in stack if layer.failed is not None]
    finishers = [layer.finished for layer in stack if layer.finished is not None]
    dependency_of = manager.dependency_of

    def before() -> Response | None:
        for step in befores:
            answer = step()
            if answer is not None:  # a layer answered (an idempotent replay): no view runs
                return answer
        return None

    def after(response: Response) -> Response:
        for step in afters:
            step(response)
        return response

    def failed(error: Exception) -> Response:
        mapped = api_error(error, dependency_of)
        g.problem = mapped
        for observe in observers:
            observe(mapped)
        return problem_response(mapped)

    def finished(_: BaseException | None) -> None:
        for step in finishers:
            step()

    app.before_request(before)
    app.after_request(after)
    app.teardown_request(finished)
    app.register_error_handler(Exception, failed)
    return stack
