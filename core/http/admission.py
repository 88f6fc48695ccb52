"""The ``admission`` layer of the HTTP stack: every request is admitted by the one admission
function (:meth:`core.managers.admission.Admission.admit`) with its route's endpoint, before
its body is read.

The endpoint is the route's (:attr:`core.http.routing.Routing.endpoints`), or, for a route
that stands for others, the one its resolver names: ``POST /actions/<name>`` is admitted as
the action (its auth, roles, scopes and ``rate_limit``). An unknown action is still counted
at the ``ip`` level, like a bad credential, before its 404. A request no route matched is
admitted as a public endpoint (maintenance, the ``ip`` level), then answered 404/405.

The caller is what the request presents: its address, the ``Authorization`` header's bearer
token (:func:`core.edge.bearer.bearer_token`, the one parser), ``X-API-Key``. A CORS preflight
is not authenticated: it carries no credential by design. The caller ends up in
``g.principal`` (:func:`core.http.auth.current_principal`), its endpoint in ``g.endpoint`` and
its quota in the ``X-RateLimit-*`` headers.
"""

from __future__ import annotations

from flask import Response, g

from core.edge.bearer import bearer_token
from core.edge.endpoint import Endpoint
from core.edge.principal import PUBLIC
from core.errors import NotFound
from core.http.pipeline import Layer, add_missing, current
from core.http.routing import Routing
from core.managers.admission import Admission, Caller
from core.managers.rate_limiter import Quota

#: What a request no route matched is admitted as.
UNMATCHED = Endpoint(kind="route", name="", auth=PUBLIC)


def layer(admission: Admission, routing: Routing) -> Layer:
    endpoints, resolvers = routing.endpoints, routing.resolvers

    def before() -> None:
        request, context = current()
        name = request.endpoint or ""
        endpoint = endpoints.get(name, UNMATCHED)
        # Straight from the WSGI environ (what request.remote_addr and request.headers read):
        # Werkzeug's header view raises and catches a KeyError for every absent header.
        environ = request.environ
        caller = Caller(
            ip=environ.get("REMOTE_ADDR"),
            bearer=bearer_token(environ.get("HTTP_AUTHORIZATION")),
            api_key=environ.get("HTTP_X_API_KEY", "").strip() or None,
            preflight=request.method == "OPTIONS",
            request_id=context.get("request_id"),
        )
        resolve = resolvers.get(name)
        if resolve is not None:
            try:
                endpoint = resolve(request.view_args or {})
            except NotFound:
                admission.admit(endpoint, caller)  # counted like any guess, then 404
                raise
        context.endpoint = endpoint
        admitted = admission.admit(endpoint, caller)
        context.principal = admitted.principal
        context.rate_limit_quota = admitted.quota

    def after(response: Response) -> None:
        quota: Quota | None = g.get("rate_limit_quota")
        if quota is not None:
            add_missing(response.headers, quota.header_items())

    return Layer("admission", before=before, after=after)
