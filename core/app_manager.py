"""AppManager: the composition root. It builds every manager of one app, starts them, drains
and closes them, and answers readiness; nothing else.

The order is declared once, in :data:`START_ORDER`: managers are built in it (each from the
settings and the managers before it), started in it, and closed in reverse. The app itself is
built by :mod:`core.factory`. View, action, socket and CLI code reaches the managers of the
current app with :func:`get_app_manager`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from flask import Flask, current_app, has_app_context
from opentelemetry.trace import Tracer

from config.loader import LoadedSettings
from config.modules import ModuleSettings
from config.settings import Settings
from core.crypto import FieldEncryptor
from core.errors import DependencyUnavailable, FrameworkError, StartupError
from core.lifecycle import Lifecycle
from core.log import Redactor
from core.managers.actions import ActionManager
from core.managers.actions.security import SecurityEvents
from core.managers.admission import Admission
from core.managers.api_keys import ApiKeyManager
from core.managers.base import HealthCheck, Manager, SharedResult
from core.managers.database import DatabaseManager
from core.managers.hooks import HooksManager
from core.managers.jwt import JWTManager
from core.managers.metrics import MetricsManager
from core.managers.modules import DiscoveredModule, ModuleManager
from core.managers.rate_limiter import RateLimiter
from core.managers.redis import RedisManager
from core.managers.services import ServicesManager
from core.managers.state import StateManager
from core.managers.vault import VaultManager
from core.managers.websocket import WebSocketManager
from core.managers.websocket import tracing as socket_tracing

if TYPE_CHECKING:
    from core.managers.tracing import TracingManager

logger = logging.getLogger(__name__)

#: The project's root folder (the Flask app's root path).
ROOT = Path(__file__).resolve().parent.parent
#: The ``app.extensions`` key of the AppManager; read it through :func:`get_app_manager`.
EXTENSION = "app_manager"
M = TypeVar("M", bound=ModuleSettings)
Checks = dict[str, dict[str, Any]]

#: Every manager, by attribute name, in the order they are built and started; ``close()``
#: closes them in reverse. Each is built from the settings and the managers before it.
START_ORDER: tuple[str, ...] = (
    "tracing",
    "vault",
    "database",
    "redis",
    "hooks",
    "state",
    "jwt",
    "api_keys",
    "metrics",
    "rate_limiter",
    "admission",
    "services",
    "modules",
    "actions",
    "websocket",
)


def _tracing(settings: Settings) -> TracingManager | None:
    if not settings.tracing_enabled:
        return None
    from core.managers.tracing import TracingManager  # the SDK is imported only when on

    return TracingManager(settings)


_BUILDERS: dict[str, Callable[[AppManager], Manager | None]] = {
    # First: the store instrumentations must be in place before any client exists.
    "tracing": lambda m: _tracing(m.settings),
    "vault": lambda m: m._vault,  # logged in already: the settings were read through it
    "database": lambda m: DatabaseManager(m.settings),
    "redis": lambda m: RedisManager(m.settings),
    "hooks": lambda m: HooksManager(),
    "state": lambda m: StateManager(m.redis, m.database.mongo, m.hooks),
    "jwt": lambda m: JWTManager(m.settings, m.redis),
    "api_keys": lambda m: ApiKeyManager(m.settings, m.database.mongo, m.redis),
    "metrics": lambda m: MetricsManager(m.settings),
    "rate_limiter": lambda m: RateLimiter(m.settings, m.redis, m.metrics, tracer=m.tracer),
    "admission": lambda m: Admission(
        m.settings,
        state=m.state,
        jwt=m.jwt,
        api_keys=m.api_keys,
        rate_limiter=m.rate_limiter,
        setting=m.loaded.value_of,
        on_key_invalid=lambda code: m.security.record("api_key.invalid", "denied", code=code),
    ),
    "services": lambda m: ServicesManager(),
    "modules": lambda m: ModuleManager(
        m.discovered,
        m.settings.modules_disabled,
        services=m.services,
        hooks=m.hooks,
    ),
    "actions": lambda m: ActionManager(
        m.settings, m.database.postgres, dependency_of=m.dependency_of, tracer=m.tracer
    ),
    "websocket": lambda m: WebSocketManager(
        m.settings,
        redis=m.redis,
        jwt=m.jwt,
        admission=m.admission,
        rate_limiter=m.rate_limiter,
        metrics=m.metrics,
        hooks=m.hooks,
        dependency_of=m.dependency_of,
    ),
}


class AppManager:
    """Owns the managers of one app; reached with :func:`get_app_manager`."""

    #: The settings and where each came from.
    loaded: LoadedSettings
    #: ``security.record(event, outcome, **details)``: audit row, log line and metric.
    security: SecurityEvents
    #: The enabled feature modules, in dependency order, found once for this build.
    discovered: tuple[DiscoveredModule, ...]
    tracing: TracingManager | None
    vault: VaultManager | None
    database: DatabaseManager
    redis: RedisManager
    hooks: HooksManager
    state: StateManager
    jwt: JWTManager
    api_keys: ApiKeyManager
    metrics: MetricsManager
    rate_limiter: RateLimiter
    admission: Admission
    services: ServicesManager
    modules: ModuleManager
    actions: ActionManager
    websocket: WebSocketManager

    def __init__(
        self,
        loaded: LoadedSettings,
        vault: VaultManager | None = None,
        *,
        modules: Sequence[DiscoveredModule],
    ) -> None:
        """``loaded``: the settings, resolved with the settings of ``modules`` (what
        :func:`~core.managers.modules.discover` found for them, once per build)."""
        self.loaded = loaded
        self.discovered = tuple(modules)
        self.settings: Settings = loaded.settings
        self.redactor = Redactor(loaded.secret_values())
        self.lifecycle = Lifecycle()
        self._vault: VaultManager | None = vault
        self.crypto = FieldEncryptor.from_settings(self.settings, vault)
        for name in START_ORDER:
            setattr(self, name, _BUILDERS[name](self))
        self.actions.after_execute.append(
            lambda run: self.metrics.action_finished(run.action.name, run.code or "ok", run.seconds)
        )
        self.actions.audit.drop_listeners.append(self.metrics.audit_dropped)
        self.admission.refusal_listeners.append(self.actions.refused)
        self.security = SecurityEvents(
            self.actions.audit, self.actions.digest, self.metrics.security_event
        )
        self.rate_limiter.ban_listeners.append(
            lambda level, identifier: self.security.record(
                "ratelimit.ban", "denied", level=level, identifier=identifier
            )
        )
        #: Runs the readiness checks side by side, each bounded by HEALTH_CHECK_TIMEOUT.
        self._checks_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="readiness")
        #: One shared run of the checks per HEALTH_READY_CACHE_SECONDS (readiness, gauges).
        self.readiness = SharedResult(
            self.run_readiness_checks, self.settings.health_ready_cache_seconds
        )
        self._closed = False
        self._close_lock = threading.Lock()

    @property
    def tracer(self) -> Tracer | None:
        """The tracer of the framework's own spans; None while tracing is off."""
        return self.tracing.tracer if self.tracing is not None else None

    @property
    def managers(self) -> list[Manager]:
        """Every manager, in :data:`START_ORDER` (Vault only when configured)."""
        found = (getattr(self, name) for name in START_ORDER)
        return [manager for manager in found if manager is not None]

    def init_app(self, app: Flask) -> None:
        """Store this AppManager and every manager in ``app.extensions``, in start order."""
        app.extensions[EXTENSION] = self
        for manager in self.managers:
            manager.init_app(app)
        if self.tracer is not None:  # connects, events and fan-out as spans
            socket_tracing.install(self.websocket.socketio.server, self.tracer)
            self.websocket.queue.tracer = self.websocket.log.tracer = self.tracer

    def start(self) -> None:
        """Start every manager in :data:`START_ORDER` (store pings, indexes, migrations,
        listeners), then emit ``app.started``; a failure names the store and what to do."""
        try:
            for manager in self.managers:
                manager.start()
        except DependencyUnavailable as exc:
            self._unreachable_at_start(exc.dependency, exc.__cause__ or exc)
        except FrameworkError:
            raise
        except Exception as exc:
            dependency = self.dependency_of(exc)
            if dependency is not None:
                self._unreachable_at_start(dependency, exc)
            # A failing migration or a conflicting index: say what failed, not "unreachable".
            message = self.redactor.text(str(exc))[:500]
            raise StartupError(f"start-up failed: {type(exc).__name__}: {message}") from exc
        self.hooks.emit("app.started", app_manager=self)
        logger.info("app started", extra={"env": self.settings.app_env, "pid": os.getpid()})

    def _unreachable_at_start(self, dependency: str, cause: BaseException) -> NoReturn:
        hint = "" if self.settings.is_prod else " (run `make run` to start the dev stack)"
        raise StartupError(
            f"{dependency} is unreachable at start-up: {type(cause).__name__}{hint}"
        ) from cause

    # -- queries ------------------------------------------------------------------------

    def settings_of(self, model: type[M]) -> M:
        """A module's resolved settings: ``get_app_manager().settings_of(TodosSettings)``."""
        return self.loaded.settings_of(model)

    def ready(self) -> tuple[bool, Checks]:
        """Whether ``/health/ready`` answers 200 (every check ok, not draining), and the checks
        of the shared run; the readiness route and the ``health_ready`` gauge both ask here."""
        checks = self.readiness()
        ok = all(check["status"] == "ok" for check in checks.values())
        return ok and not self.lifecycle.draining.is_set(), checks

    def readiness_checks(self) -> dict[str, HealthCheck]:
        checks: dict[str, HealthCheck] = {}
        for manager in self.managers:
            checks.update(manager.readiness_checks())
        return checks

    def run_readiness_checks(self) -> Checks:
        """Every readiness check, concurrently; a check slower than the timeout is ``timeout``.
        Callers use :attr:`readiness`, which shares one run between concurrent callers."""
        timeout = self.settings.health_check_timeout
        futures = {
            name: self._checks_pool.submit(check) for name, check in self.readiness_checks().items()
        }
        deadline = time.monotonic() + timeout
        results: Checks = {}
        for name, future in futures.items():
            try:
                results[name] = future.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                future.cancel()
                results[name] = {"status": "timeout", "latency_ms": round(timeout * 1000, 2)}
        return results

    def dependency_of(self, error: BaseException) -> str | None:
        """The dependency an exception says is unreachable (``mongodb``, ``redis``...)."""
        if isinstance(error, self.database.unavailable_errors):
            return self.database.dependency_of(error)
        for manager in self.managers:
            if manager.unavailable_errors and isinstance(error, manager.unavailable_errors):
                return manager.name
        return None

    # -- shutdown -----------------------------------------------------------------------

    def drain(self, timeout: float | None = None) -> bool:
        """Mark the process as draining (readiness 503) and wait for in-flight requests."""
        self.lifecycle.draining.set()
        logger.info("draining", extra={"in_flight": self.lifecycle.in_flight})
        self.hooks.emit("app.draining", app_manager=self)
        idle = self.lifecycle.wait_idle(
            self.settings.shutdown_timeout if timeout is None else timeout
        )
        if not idle:
            logger.warning("drain timed out", extra={"in_flight": self.lifecycle.in_flight})
        return idle

    def close(self) -> None:
        """Emit ``app.stopping`` and close every manager in reverse :data:`START_ORDER`.
        Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self.lifecycle.draining.set()
        try:
            self.hooks.emit("app.stopping", app_manager=self)
        except Exception:
            logger.exception("app.stopping hook failed")
        for manager in reversed(self.managers):
            try:
                manager.close()
            except Exception:
                logger.exception("manager close failed", extra={"manager": manager.name})
        self._checks_pool.shutdown(wait=False, cancel_futures=True)
        logger.info("app stopped")


def get_app_manager() -> AppManager:
    """The AppManager of the current Flask app: the one way views, action handlers, socket
    events and CLI commands reach the managers (``get_app_manager().database.mongo``).

    Needs an app context, which Flask provides in a request, a Socket.IO event and a
    ``flask`` command; elsewhere (a thread, a script) push one with ``with app.app_context():``.
    """
    if not has_app_context():
        raise RuntimeError(
            "get_app_manager() needs an app context: call it inside a request, a Socket.IO "
            "event or a `flask` command, or push one with `with app.app_context():`"
        )
    manager: AppManager = current_app.extensions[EXTENSION]
    return manager
