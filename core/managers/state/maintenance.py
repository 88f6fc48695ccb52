"""Maintenance mode as state: the ``maintenance`` machine of the StateManager, shared by every
instance, and :func:`set_mode`, the one way to switch it (``flask maintenance on|off`` and
the admin module's route). The gate enforcing it is the first step of admission
(:mod:`core.managers.admission`), for every door.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from core.managers.state.manager import StateManager
from core.managers.state.store import StateValue

logger = logging.getLogger(__name__)

MACHINE = "maintenance"
OFF, ON = "off", "on"
DEFAULT_MESSAGE = "The service is down for maintenance."


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
