"""``GET /metrics`` and the request instrumentation feeding the MetricsManager.

The instrumentation is the ``metrics`` layer of the HTTP stack (:mod:`core.http.stack`), just
inside the request id, so timing starts before any refusal (a 401 from the auth policy is
counted too). On the way out it records method, route template and status, and for 401/403 the
problem code the error path left in ``g.problem``; the error path tells it of unexpected
exceptions (by type). ``http_requests_in_flight`` reads the in-flight count the drain keeps
(:class:`core.lifecycle.InFlightMiddleware`: from the request's arrival until the server closes
its response, whatever happened).

``/metrics`` uses the ``operator`` policy (bearer ``METRICS_TOKEN`` when set) and is rate
limited and banned like any route, so the token cannot be guessed at speed (issue 22). With
``METRICS_PORT`` set the route is not registered: the MetricsManager serves the metrics on
that port instead, so the app's port (the one behind the Ingress) never exposes them, and
admits each of that port's requests with the one admission function too
(:func:`port_admission`).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

from flask import Flask, Response, g, request
from flask.typing import ResponseReturnValue
from werkzeug.routing import Rule

from core.app_manager import AppManager, get_app_manager
from core.edge.bearer import bearer_token
from core.edge.endpoint import Endpoint
from core.edge.principal import OPERATOR, PUBLIC
from core.edge.problems import DependencyOf, api_error, unexpected
from core.errors import ApiError
from core.http.pipeline import Layer, current
from core.http.routes import Routes
from core.managers.admission import Admission, Caller
from core.managers.metrics import UNMATCHED, MetricsManager
from core.managers.metrics.server import SCRAPE_PATH, Admit

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

bp = Routes("metrics", __name__)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_AUTH_STATUSES = frozenset({401, 403})
#: A scrape on ``METRICS_PORT`` (:func:`port_admission`): the route's facts, on that port.
PORT_SCRAPE = Endpoint(
    kind="route",
    name="metrics.port",
    summary="Prometheus exposition on METRICS_PORT.",
    auth=OPERATOR,
    open_in_maintenance=True,
)
#: Any other path of ``METRICS_PORT``: counted at the ``ip`` level, then 404.
PORT_UNMATCHED = Endpoint(
    kind="route", name="metrics.port.unmatched", auth=PUBLIC, open_in_maintenance=True
)


@bp.get(
    SCRAPE_PATH,
    auth=OPERATOR,
    media_type=("text/plain", "application/openmetrics-text"),
    open_in_maintenance=True,  # operators scrape while it is on
)
def scrape() -> ResponseReturnValue:
    """Prometheus exposition (OpenMetrics when the scraper asks for it)."""
    data, content_type = get_app_manager().metrics.exposition(request.headers.get("Accept"))
    return Response(data, content_type=content_type)


def route_label() -> str:
    """The matched URL rule (``/things/<thing_id>``), never the raw path."""
    return _route_of(request.url_rule)


def _route_of(rule: Rule | None) -> str:
    return rule.rule if rule is not None else UNMATCHED


def install(app: Flask, app_manager: AppManager) -> None:
    """Register ``/metrics`` (unless METRICS_PORT) and start the metrics port with the app."""
    metrics = app_manager.metrics
    if metrics.port is None:
        app.register_blueprint(bp)
    metrics.track_readiness(app_manager.ready, lambda: app_manager.redis.memory)
    lifecycle = app_manager.lifecycle
    metrics.count_in_flight(lambda: lifecycle.requests)
    admit = port_admission(
        app_manager.admission,
        app_manager.settings.metrics_token is not None,
        app_manager.dependency_of,
    )
    app_manager.hooks.register("app.started", lambda **_: metrics.start_server(admit), strict=True)


def port_admission(admission: Admission, token_set: bool, dependency_of: DependencyOf) -> Admit:
    """How ``METRICS_PORT`` admits a request: the one admission function, as
    :data:`PORT_SCRAPE` for ``/metrics`` (the bearer ``METRICS_TOKEN``; without one, which
    prod refuses with this port, the port is open) and :data:`PORT_UNMATCHED` for any other
    path. Either way the request counts at its address's ``ip`` level, so a wrong token costs
    its sender like any refused request, and a banned address is refused whatever it
    presents. Whatever else fails becomes its ApiError through the one error mapper."""
    scrape = PORT_SCRAPE if token_set else replace(PORT_SCRAPE, auth=PUBLIC)

    def admit(environ: WSGIEnvironment) -> None:
        endpoint = scrape if environ.get("PATH_INFO") == SCRAPE_PATH else PORT_UNMATCHED
        caller = Caller(
            ip=environ.get("REMOTE_ADDR") or None,
            bearer=bearer_token(environ.get("HTTP_AUTHORIZATION")),
        )
        try:
            admission.admit(endpoint, caller)
        except Exception as exc:
            error = api_error(exc, dependency_of)
            if error is exc:
                raise
            raise error from exc

    return admit


def layer(metrics: MetricsManager) -> Layer:
    """The request instrumentation, a layer of :data:`core.http.stack.HTTP_STACK`."""

    def started() -> None:
        g._metrics_start = time.perf_counter()

    def record(response: Response) -> None:
        request, context = current()
        start = context.get("_metrics_start")
        if start is None:
            return
        method = request.method
        if method not in _METHODS:
            method = "OTHER"
        status = response.status_code
        route = _route_of(request.url_rule)
        metrics.observe_request(method, route, status, time.perf_counter() - start)
        if status in _AUTH_STATUSES:
            endpoint: Endpoint | None = context.get("endpoint")
            policy = endpoint.auth if endpoint is not None and endpoint.name else None
            problem: ApiError | None = context.get("problem")
            code = problem.code if problem is not None else "UNKNOWN"
            metrics.auth_failure(policy or "none", code)

    def failed(error: ApiError) -> None:
        cause = unexpected(error)
        if cause is not None:
            metrics.http_exception(route_label(), cause)

    return Layer("metrics", before=started, after=record, failed=failed)
