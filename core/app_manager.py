"""AppManager: the process singleton that builds the Flask app and owns every manager.

Managers start in dependency order (config -> logging -> vault -> databases/redis -> state ->
auth (jwt, api keys) -> rate limiter -> hooks/services -> modules -> routes/middleware) and
close in reverse. ``AppManager.create()`` is the factory behind ``app.create_app()``; tests call it
as often as they like and each call builds an independent app. View, action, socket and CLI
code reaches the managers of the current app with :func:`get_app_manager`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import engineio
from flask import Flask, current_app, has_app_context
from flask_cors import CORS
from werkzeug.middleware.proxy_fix import ProxyFix

from config.loader import LoadedSettings, SettingsLoader
from config.modules import ModuleSettings
from config.settings import Settings
from core.crypto import FieldEncryptor
from core.errors import DependencyUnavailable, FrameworkError, StartupError
from core.http import auth, rate_limiter
from core.http.json import JsonProvider
from core.lifecycle import InFlightMiddleware, Lifecycle
from core.log import Redactor, configure_logging
from core.managers.actions import ActionManager
from core.managers.api_keys import ApiKeyManager
from core.managers.base import HealthCheck, Manager
from core.managers.database import DatabaseManager
from core.managers.hooks import HooksManager
from core.managers.jwt import JWTManager
from core.managers.metrics import MetricsManager
from core.managers.modules import ModuleManager, discover, module_settings
from core.managers.rate_limiter import RateLimiter
from core.managers.redis import RedisManager
from core.managers.services import ServicesManager
from core.managers.state import StateManager
from core.managers.vault import VaultManager
from core.managers.websocket import WebSocketManager

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
#: The ``app.extensions`` key of the AppManager; read it through :func:`get_app_manager`.
EXTENSION = "app_manager"
RequestGate = Callable[[str | None], None]
M = TypeVar("M", bound=ModuleSettings)
#: Response headers browsers may read cross-origin.
EXPOSED_HEADERS = [
    "X-Request-ID",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "Retry-After",
]


class AppManager:
    """Owns the managers of one app; reached with :func:`get_app_manager`."""

    def __init__(self, loaded: LoadedSettings, vault: VaultManager | None = None) -> None:
        self.loaded = loaded
        self.settings: Settings = loaded.settings
        self.redactor = Redactor(loaded.secret_values())
        self.lifecycle = Lifecycle()
        self.executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="app-manager")
        # Built first so every manager can report to it; it starts last and closes first.
        self.metrics = MetricsManager(self.settings)
        self.vault = vault
        self.crypto = FieldEncryptor.from_settings(self.settings, vault)
        self.database = DatabaseManager(self.settings)
        self.redis = RedisManager(self.settings)
        self.hooks = HooksManager()
        self.state = StateManager(self.redis, self.database.mongo, self.hooks)
        self.jwt = JWTManager(self.settings, self.redis)
        self.api_keys = ApiKeyManager(self.settings, self.database.mongo, self.redis)
        self.rate_limiter = RateLimiter(self.settings, self.redis, self.metrics)
        self.services = ServicesManager()
        self.websocket = WebSocketManager(self.settings, self)
        self.modules = ModuleManager(self.settings.modules_packages, self.settings.modules_disabled)
        self.actions = ActionManager(
            self.settings, self.database.postgres, dependency_of=self.dependency_of
        )
        self.actions.after_execute.append(
            lambda run: self.metrics.action_finished(run.action.name, run.code or "ok", run.seconds)
        )
        self.actions.audit.drop_listeners.append(self.metrics.audit_dropped)
        self.authenticators: dict[str, Callable[[], None]] = {
            auth.PUBLIC: lambda: None,
            auth.OPERATOR: auth.operator_token(
                self.settings.metrics_token,
                # prod, or a METRICS_PORT of their own: never open on the app's port
                open_without_token=not (self.settings.is_prod or self.settings.metrics_port),
            ),
            auth.JWT: auth.jwt_authenticator(self.jwt),
            auth.API_KEY: auth.api_key_authenticator(self.api_keys),
        }
        self.authenticators[auth.JWT_OR_API_KEY] = auth.either_authenticator(
            self.authenticators[auth.JWT], self.authenticators[auth.API_KEY]
        )
        self.request_gates: list[RequestGate] = []
        self.route_policies: dict[str, str] = {}
        self.rate_limit_plans: dict[str, rate_limiter.RoutePlan] = {}
        #: The readiness checks, one shared run per HEALTH_READY_CACHE_SECONDS (core.http.health).
        self.readiness: Callable[[], dict[str, dict[str, Any]]] = dict
        #: endpoint -> extra rate-limit buckets for a request (actions add theirs).
        self.bucket_resolvers: dict[str, rate_limiter.BucketResolver] = {}
        self._closed = False
        self._close_lock = threading.Lock()

    # -- construction -------------------------------------------------------------------

    @classmethod
    def create(cls, environ: Mapping[str, str] | None = None, *, start: bool = True) -> Flask:
        """Build an app from settings in ``environ`` (default: ``os.environ``).

        With ``start`` (the default) the start-up work that needs the stores runs now and a
        failure stops start-up; the CLI builds with ``start=False`` so that commands such as
        ``flask config show`` work while a store is down.
        """
        loader = SettingsLoader(environ)
        bootstrap = loader.bootstrap()
        vault = VaultManager(bootstrap.settings) if bootstrap.settings.vault_addr else None
        try:
            if vault is not None:
                vault.login()
            modules = discover(
                bootstrap.settings.modules_packages, bootstrap.settings.modules_disabled
            )
            loaded = loader.load(
                vault.read_secret() if vault is not None else None,
                modules=module_settings(modules),
            )
        except BaseException:
            if vault is not None:
                vault.close()
            raise
        manager = cls(loaded, vault)
        try:
            app = manager.build()
            if start:
                manager.start()
        except BaseException:
            manager.close()
            raise
        return app

    @property
    def managers(self) -> list[Manager]:
        """Every manager, in start order."""
        ordered: list[Manager | None] = [
            self.vault,
            self.database,
            self.redis,
            self.state,
            self.jwt,
            self.api_keys,
            self.rate_limiter,
            self.hooks,
            self.services,
            self.modules,
            self.actions,
            self.websocket,
            self.metrics,
        ]
        return [m for m in ordered if m is not None]

    def build(self) -> Flask:
        # These views reach this module's get_app_manager(): imported once it is defined.
        from core.http import actions, health, maintenance, openapi, pipeline, problems
        from core.http import metrics as http_metrics

        settings = self.settings
        configure_logging(settings.log_level, settings.effective_log_format, self.redactor)
        for name in self.loaded.ignored_vault_keys:
            logger.warning(
                "vault key ignored: it can only come from env or a secret file",
                extra={"setting": name},
            )
        app = Flask("app", root_path=str(ROOT), static_folder=None)
        app.config.update(
            MAX_CONTENT_LENGTH=settings.max_content_length,
            DEBUG=False,
            TESTING=settings.app_env == "test",
            PROPAGATE_EXCEPTIONS=False,
        )
        app.json = JsonProvider(app)
        app.extensions[EXTENSION] = self
        for manager in self.managers:
            manager.init_app(app)

        if settings.cors_origins:
            CORS(
                app,
                origins=settings.cors_origins,
                allow_headers=["Authorization", "Content-Type", "X-API-Key", "X-Request-ID"],
                expose_headers=EXPOSED_HEADERS,
                max_age=600,
            )
        problems.register_error_handlers(app, self)
        pipeline.install(app, self)
        maintenance.install(self)
        self.readiness = health.shared_checks(self)
        app.register_blueprint(health.bp)
        http_metrics.install(app, self)
        self.modules.load(app, self)
        for module, directory in self.modules.migration_dirs():
            self.database.migrator.add_module(module, directory)
        self.actions.load(self.modules.loaded)
        actions.install(app, self)
        openapi.install(app, self)
        self.route_policies = auth.resolve_policies(app)
        self.rate_limit_plans = rate_limiter.resolve_routes(app, self.settings)
        self._register_cli(app)
        app.wsgi_app = self.wrap_wsgi(app.wsgi_app)  # type: ignore[method-assign]
        return app

    def wrap_wsgi(self, wsgi_app: Any) -> Any:
        """Outermost first: trusted-proxy fix, then in-flight accounting.

        Socket.IO's middleware (flask_socketio wraps the Flask app in engine.io's
        ``WSGIApp``) serves ``/socket.io/`` and passes every other request through, at a
        cost per request (under gunicorn it defines a class for each one): plain HTTP
        requests go straight to the Flask app it wraps.
        """
        http_app = wsgi_app.wsgi_app if isinstance(wsgi_app, engineio.WSGIApp) else wsgi_app
        wrapped = InFlightMiddleware(http_app, self.lifecycle, ("/socket.io",), wsgi_app)
        hops = self.settings.trusted_proxies
        if hops:
            return ProxyFix(wrapped, x_for=hops, x_proto=hops, x_host=0, x_port=0, x_prefix=0)
        return wrapped

    def _register_cli(self, app: Flask) -> None:
        from core.cli import register_commands

        register_commands(app)

    def start(self) -> None:
        """Start-up work that needs the stores; a failure names the store and what to do."""
        try:
            self.database.mongo.ping()
            self.database.postgres.ping()
            self.redis.client.ping()
            self.database.start()
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
        self.state.start()
        self.websocket.start()
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

    def readiness_checks(self) -> dict[str, HealthCheck]:
        checks: dict[str, HealthCheck] = {}
        for manager in self.managers:
            checks.update(manager.readiness_checks())
        return checks

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
        """Emit ``app.stopping`` and close every manager in reverse start order. Idempotent."""
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
        self.executor.shutdown(wait=False, cancel_futures=True)
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
