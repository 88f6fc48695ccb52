"""Maintenance mode: the ``maintenance`` state machine and the request gate enforcing it.

While the machine is ``on`` every request gets 503 ``MAINTENANCE`` (``detail`` = the message)
on every instance, except health (``/health/...``), metrics (``/metrics``) and admin routes
(``/userauth/admin/...``), so operators can still probe, scrape and switch it off. The gate
reads the StateManager's local cache, kept coherent by pub/sub: no Redis round trip per
request in the normal case. Switched by ``flask maintenance on|off`` (and, with the identity
layer, ``POST /userauth/admin/maintenance``), both through :func:`set_mode`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import request

from core.errors import DependencyUnavailable, Maintenance
from core.managers.state import StateManager, StateValue

if TYPE_CHECKING:
    from core.http.routing import RequestGate, Routing

logger = logging.getLogger(__name__)

MACHINE = "maintenance"
OFF, ON = "off", "on"
DEFAULT_MESSAGE = "The service is down for maintenance."
EXEMPT_ENDPOINTS = frozenset({"health.live", "health.ready"})
EXEMPT_PREFIXES = ("/health/", "/userauth/admin/")
EXEMPT_PATHS = frozenset({"/metrics"})


@dataclass(frozen=True)
class MaintenanceStatus:
    enabled: bool
    message: str | None
    version: int
    updated_at: str | None

    @classmethod
    def of(cls, value: StateValue) -> MaintenanceStatus:
        enabled = value.state == ON
        message = str(value.data.get("message") or DEFAULT_MESSAGE) if enabled else None
        return cls(enabled, message, value.version, value.updated_at)

    def to_dict(self) -> dict[str, Any]:
        """The body of the admin endpoint: ``{enabled, message}``."""
        return {"enabled": self.enabled, "message": self.message}


def define(state: StateManager) -> None:
    # on -> on changes the message while staying on.
    state.define(MACHINE, {OFF, ON}, {OFF: {ON}, ON: {OFF, ON}}, initial=OFF)


def status(state: StateManager) -> MaintenanceStatus:
    """The current mode, read from Redis (not the cache): for operators, not the hot path."""
    return MaintenanceStatus.of(state.refresh(MACHINE))


def set_mode(state: StateManager, enabled: bool, message: str | None = None) -> MaintenanceStatus:
    """Switch maintenance on (with ``message``) or off; a no-op when already so.

    Raises StateConflict if another operator changed it at the same moment and
    DependencyUnavailable when Redis or MongoDB is down.
    """
    current = state.refresh(MACHINE)
    if enabled:
        wanted = message or DEFAULT_MESSAGE
        if current.state == ON and current.data.get("message") == wanted:
            return MaintenanceStatus.of(current)
        new = state.transition(MACHINE, ON, {"message": wanted}, current.version)
    else:
        if current.state == OFF:
            return MaintenanceStatus.of(current)
        new = state.transition(MACHINE, OFF, None, current.version)
    logger.warning("maintenance mode switched", extra={"enabled": enabled})
    return MaintenanceStatus.of(new)


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
    """Declare the machine and put the gate first, before authentication."""
    define(state)
    routing.request_gates.insert(0, gate(state))
