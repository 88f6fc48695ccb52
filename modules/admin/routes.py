"""HTTP routes of the admin module: ``POST /userauth/admin/maintenance`` (role ``admin``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from core.app_manager import get_app_manager
from core.http.routes import Routes
from core.managers.state import maintenance

bp = Routes("admin", __name__)
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


@bp.post(
    "/userauth/admin/maintenance",
    roles=["admin"],
    body=MaintenanceSwitch,
    response=MaintenanceMode,
    errors={"STATE_CONFLICT": 409},
    open_in_maintenance=True,  # the switch must work while it is on
)
def set_maintenance(body: MaintenanceSwitch) -> MaintenanceMode:
    """Switch maintenance mode on or off; answers the mode as every instance sees it."""
    manager = get_app_manager()
    status = maintenance.set_mode(manager.state, body.enabled, body.message)
    manager.security.record("maintenance.on" if body.enabled else "maintenance.off")
    return MaintenanceMode(enabled=status.enabled, message=status.message)
