"""Operational routes: liveness, readiness and module status.

``/health/live`` checks nothing but the process. ``/health/ready`` runs every dependency check
in parallel, each bounded by ``HEALTH_CHECK_TIMEOUT``, so one hung dependency cannot hang the
probe; it answers 503 while any check fails or while the process is draining. It is public
and exempt from limits, so the result is shared (:func:`shared_checks`): one run per
``HEALTH_READY_CACHE_SECONDS``, concurrent callers wait for the run in flight. Draining is
never cached.
"""

from __future__ import annotations

import time
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from core.app_manager import AppManager, get_app_manager
from core.edge.principal import OPERATOR, PUBLIC
from core.http.auth import declare_auth
from core.managers.base import SharedResult

bp = Blueprint("health", __name__)


def run_checks(app_manager: AppManager) -> dict[str, dict[str, Any]]:
    """Every readiness check, concurrently; a check slower than the timeout is ``timeout``."""
    timeout = app_manager.settings.health_check_timeout
    futures = {
        name: app_manager.executor.submit(check)
        for name, check in app_manager.readiness_checks().items()
    }
    deadline = time.monotonic() + timeout
    results: dict[str, dict[str, Any]] = {}
    for name, future in futures.items():
        try:
            results[name] = future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            future.cancel()
            results[name] = {"status": "timeout", "latency_ms": round(timeout * 1000, 2)}
    return results


def shared_checks(app_manager: AppManager) -> SharedResult[dict[str, dict[str, Any]]]:
    """The app's one shared run of :func:`run_checks` (readiness and the dependency gauges)."""
    return SharedResult(
        lambda: run_checks(app_manager), app_manager.settings.health_ready_cache_seconds
    )


@bp.get("/health/live")
@declare_auth(PUBLIC)
def live() -> ResponseReturnValue:
    return jsonify(status="ok")


@bp.get("/health/ready")
@declare_auth(PUBLIC)
def ready() -> ResponseReturnValue:
    app_manager = get_app_manager()
    checks = app_manager.readiness()
    draining = app_manager.lifecycle.draining.is_set()
    ok = not draining and all(check["status"] == "ok" for check in checks.values())
    body: dict[str, Any] = {"status": "ready" if ok else "not_ready", "checks": checks}
    if draining:
        body["reason"] = "shutting_down"
    return jsonify(body), 200 if ok else 503


@bp.get("/modules/status")
@declare_auth(OPERATOR)
def modules_status() -> ResponseReturnValue:
    return jsonify(items=get_app_manager().modules.status())
