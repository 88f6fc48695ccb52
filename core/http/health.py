"""Operational routes: liveness, readiness and module status.

``/health/live`` checks nothing but the process; with ``HEALTH_PORT`` it is answered on that
port too, from a thread beside the worker's loop (:mod:`core.http.liveness`).
``/health/ready`` runs every dependency check in parallel, each bounded by
``HEALTH_CHECK_TIMEOUT``, so one hung dependency cannot hang the probe; it answers 503 while
any check fails or while the process is draining. It is public and exempt from limits, so the
result is shared (``AppManager.readiness``): one run per ``HEALTH_READY_CACHE_SECONDS``,
concurrent callers wait for the run in flight. Draining is never cached.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from core.app_manager import get_app_manager
from core.edge.principal import OPERATOR, PUBLIC
from core.http.liveness import LivenessPort, LoopBeat, live_answer
from core.http.routes import Routes

if TYPE_CHECKING:
    from flask import Flask

    from core.app_manager import AppManager

bp = Routes("health", __name__)


def install(app: Flask, app_manager: AppManager) -> None:
    """Register the health routes, and serve ``HEALTH_PORT`` from ``app.started`` to
    ``app.stopping`` when it is set."""
    app.register_blueprint(bp)
    settings = app_manager.settings
    if settings.health_port is None:
        return
    beat = LoopBeat()
    port = LivenessPort(
        settings.host, settings.health_port, live_answer(beat, settings.liveness_max_lag)
    )

    def start(**_: Any) -> None:
        beat.start()
        port.start()

    def stop(**_: Any) -> None:
        port.stop()
        beat.stop()

    app_manager.hooks.register("app.started", start, strict=True)
    app_manager.hooks.register("app.stopping", stop)


class Live(BaseModel):
    status: Literal["ok"]


class Check(BaseModel):
    """One dependency's check: ``status`` (``ok`` or what is wrong), its latency, details."""

    model_config = ConfigDict(extra="allow")
    status: str
    latency_ms: float | None = None


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    #: One entry per dependency: ``mongodb``, ``redis``, ``postgres``, ``vault``.
    checks: dict[str, Check]
    #: ``shutting_down`` while the process drains.
    reason: str | None = None


class ModuleStatus(BaseModel):
    name: str
    enabled: bool
    dependencies: list[str]
    #: The module's ``health()``; null when it is disabled.
    health: dict[str, Any] | None


class ModuleStatusList(BaseModel):
    items: list[ModuleStatus]


@bp.get(
    "/health/live", auth=PUBLIC, response=Live, rate_limit_exempt=True, open_in_maintenance=True
)
def live() -> Live:
    """Liveness: the process answers (no dependency is checked)."""
    return Live(status="ok")


@bp.get(
    "/health/ready",
    auth=PUBLIC,
    response=Readiness,
    responses={503: Readiness},
    rate_limit_exempt=True,
    open_in_maintenance=True,
)
def ready() -> tuple[dict[str, Any], int]:
    """Readiness: every dependency answers in time and the process is not draining."""
    app_manager = get_app_manager()
    ok, checks = app_manager.ready()
    body: dict[str, Any] = {"status": "ready" if ok else "not_ready", "checks": checks}
    if app_manager.lifecycle.draining.is_set():
        body["reason"] = "shutting_down"
    return body, 200 if ok else 503


@bp.get("/modules/status", auth=OPERATOR, response=ModuleStatusList)
def modules_status() -> dict[str, Any]:
    """Every module: enabled or not, its dependencies and health."""
    return {"items": get_app_manager().modules.status()}
