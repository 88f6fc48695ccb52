"""HTTP routes of the admin module: ``POST /userauth/admin/maintenance`` (role ``admin``)."""

from __future__ import annotations

from flask import Blueprint
from pydantic import BaseModel, ConfigDict, Field

from core.app_manager import get_app_manager
from core.http.auth import require_roles
from core.http.typed import typed
from core.managers.state import maintenance

bp = Blueprint("admin", __name__)
MESSAGE_MAX = 500


class MaintenanceSwitch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool
    #: Shown to callers as the 503 problem's ``detail``; a default one when left out.
    message: str | None = Field(None, min_length=1, max_length=MESSAGE_MAX)


class MaintenanceMode(BaseModel):
    enabled: bool
    #: null while maintenance is off.
    message: str | None


@bp.post("/userauth/admin/maintenance")
@require_roles("admin")
@typed(body=MaintenanceSwitch, response=MaintenanceMode, errors={409: ["STATE_CONFLICT"]})
def set_maintenance(body: MaintenanceSwitch) -> MaintenanceMode:
    """Switch maintenance mode on or off; answers the mode as every instance sees it."""
    manager = get_app_manager()
    status = maintenance.set_mode(manager.state, body.enabled, body.message)
    manager.security.record("maintenance.on" if body.enabled else "maintenance.off")
    return MaintenanceMode(enabled=status.enabled, message=status.message)
