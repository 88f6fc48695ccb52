"""``GET /metrics`` and the request instrumentation feeding the MetricsManager.

Timing starts in the first ``before_request`` hook, ahead of the pipeline's: before-request
hooks stop at the first one that raises (a 401 from the auth policy), and those requests must
be counted too. ``after_request`` records method, route template and status;
``teardown_request`` ends the in-flight count whatever happened. Unexpected exceptions are
counted by wrapping the app's catch-all error handler, so whatever renders the problem
response, the exception type is known.

``/metrics`` uses the ``operator`` policy (bearer ``METRICS_TOKEN`` when set). With
``METRICS_PORT`` set the route is not registered: the MetricsManager serves the metrics on
that port instead, so the app's port (the one behind the Ingress) never exposes them.
"""

from __future__ import annotations

import json
import time
from typing import cast

from flask import Blueprint, Flask, Response, g, request
from flask.typing import ResponseReturnValue

from core.app_manager import AppManager, get_app_manager
from core.edge.principal import OPERATOR
from core.edge.problems import PROBLEM_JSON
from core.http.auth import declare_auth
from core.http.routing import Routing
from core.http.typed import typed
from core.managers.metrics import UNMATCHED, MetricsManager

bp = Blueprint("metrics", __name__)

#: The endpoint of ``/metrics``, for rate-limit and other exemptions.
ENDPOINT = "metrics.scrape"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_AUTH_STATUSES = frozenset({401, 403})


@bp.get("/metrics")
@declare_auth(OPERATOR)
@typed(media_type=("text/plain", "application/openmetrics-text"))
def scrape() -> ResponseReturnValue:
    """Prometheus exposition (OpenMetrics when the scraper asks for it)."""
    data, content_type = get_app_manager().metrics.exposition(request.headers.get("Accept"))
    return Response(data, content_type=content_type)


def route_label() -> str:
    """The matched URL rule (``/things/<thing_id>``), never the raw path."""
    rule = request.url_rule
    return rule.rule if rule is not None else UNMATCHED


def install(app: Flask, app_manager: AppManager, routing: Routing) -> None:
    """Register ``/metrics`` (unless METRICS_PORT) and the instrumentation hooks on ``app``.

    Call after the problem handlers are registered: the catch-all handler gets wrapped.
    """
    metrics = app_manager.metrics
    if metrics.port is None:
        app.register_blueprint(bp)
    metrics.track_dependencies(app_manager.readiness)
    app_manager.hooks.register("app.started", lambda **_: metrics.start_server(), strict=True)

    def started() -> None:
        g._metrics_start = time.perf_counter()
        metrics.http_in_flight.inc()

    # First of all before-request hooks (the pipeline's are registered already).
    app.before_request_funcs.setdefault(None, []).insert(0, started)

    @app.after_request
    def record(response: Response) -> Response:
        start = g.get("_metrics_start")
        if start is None:
            return response
        method = request.method if request.method in _METHODS else "OTHER"
        status = response.status_code
        metrics.observe_request(method, route_label(), status, time.perf_counter() - start)
        if status in _AUTH_STATUSES:
            policy = routing.route_policies.get(request.endpoint or "", "none")
            metrics.auth_failure(policy, _problem_code(response))
        return response

    @app.teardown_request
    def finished(error: BaseException | None) -> None:
        if g.pop("_metrics_start", None) is not None:
            metrics.http_in_flight.dec()

    _count_exceptions(app, metrics)


def _count_exceptions(app: Flask, metrics: MetricsManager) -> None:
    handler = app.error_handler_spec.get(None, {}).get(None, {}).get(Exception)
    if handler is None:
        raise RuntimeError("core.http.metrics.install() needs the problem handlers registered")

    def counting_handler(error: Exception) -> ResponseReturnValue:
        metrics.http_exception(route_label(), error)
        return cast(ResponseReturnValue, app.ensure_sync(handler)(error))

    app.register_error_handler(Exception, counting_handler)


def _problem_code(response: Response) -> str:
    """The ``code`` of a problem response (small, already rendered); ``UNKNOWN`` otherwise."""
    if response.mimetype != PROBLEM_JSON or response.is_streamed:
        return "UNKNOWN"
    try:
        code = json.loads(response.get_data())["code"]
    except (ValueError, KeyError, TypeError):
        return "UNKNOWN"
    return str(code)
