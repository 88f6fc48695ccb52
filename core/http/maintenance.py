"""Maintenance mode in the request pipeline: the gate enforcing the ``maintenance`` machine
(:mod:`core.managers.state.maintenance`).

While the machine is ``on`` every request gets 503 ``MAINTENANCE`` (``detail`` = the message)
on every instance, except health (``/health/...``), metrics (``/metrics``) and admin routes
(``/userauth/admin/...``), so operators can still probe, scrape and switch it off. The gate
reads the StateManager's local cache, kept coherent by pub/sub: no Redis round trip per
request in the normal case. Switched by ``flask maintenance on|off`` (and, with the identity
layer, ``POST /userauth/admin/maintenance``), both through
:func:`core.managers.state.maintenance.set_mode`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from flask import request

from core.errors import DependencyUnavailable, Maintenance
from core.managers.state import StateManager
from core.managers.state.maintenance import DEFAULT_MESSAGE, MACHINE, ON, define

if TYPE_CHECKING:
    from core.http.routing import RequestGate, Routing

logger = logging.getLogger(__name__)

EXEMPT_ENDPOINTS = frozenset({"health.live", "health.ready"})
EXEMPT_PREFIXES = ("/health/", "/userauth/admin/")
EXEMPT_PATHS = frozenset({"/metrics"})


def gate(state: StateManager) -> RequestGate:
    """The request gate: raises Maintenance while the mode is on, outside the exemptions."""

    def maintenance_gate(endpoint: str | None) -> None:
        if endpoint in EXEMPT_ENDPOINTS:
            return
        path = request.path
        if path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIXES):
            return
        try:
            current = state.get(MACHINE)
        except DependencyUnavailable:
            # Redis and MongoDB both unreachable and nothing cached: an outage must not
            # pass for maintenance; routes that need a store answer 503 on their own.
            return
        if current.state == ON:
            raise Maintenance(str(current.data.get("message") or DEFAULT_MESSAGE))

    return maintenance_gate


def install(state: StateManager, routing: Routing) -> None:
    """Declare the machine and add its gate (the factory installs it first of all gates)."""
    define(state)
    routing.request_gates.append(gate(state))
