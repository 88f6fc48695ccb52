"""The app factory: settings -> AppManager -> Flask app with the HTTP layer installed.

:func:`create_app` is what ``app.create_app()``, the server, the CLI and the tests call; each
call builds an independent app. :func:`build` puts the HTTP layer on an AppManager's app: the
HTTP stack declared in :data:`core.http.stack.HTTP_STACK`, the routes, the modules; and
:func:`wrap_wsgi` adds the WSGI middleware.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import engineio
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from config.loader import SettingsLoader
from core.app_manager import ROOT, AppManager
from core.cli.registry import register_commands
from core.errors import StartupError
from core.http import actions, asyncapi, health, openapi, stack
from core.http import metrics as http_metrics
from core.http.json import JsonProvider
from core.http.routing import Routing
from core.lifecycle import InFlightMiddleware
from core.log import configure_logging
from core.managers.modules import discover, module_settings
from core.managers.vault import VaultManager
from core.managers.websocket.transport import socket_app

logger = logging.getLogger(__name__)

#: The ``app.extensions`` key of the app's :class:`~core.http.routing.Routing`.
ROUTING = "routing"


def create_app(environ: Mapping[str, str] | None = None, *, start: bool = True) -> Flask:
    """Build an app from settings in ``environ`` (default: ``os.environ``).

    With ``start`` (the default) the start-up work that needs the stores runs now and a
    failure stops start-up; the CLI builds with ``start=False`` so that commands such as
    ``flask config show`` work while a store is down.
    """
    loader = SettingsLoader(environ)
    bootstrap = loader.bootstrap()
    # Once per build: the modules' settings are resolved for these classes, and the
    # ModuleManager loads the same ones (MODULES_* are bootstrap settings: Vault cannot
    # change them between the two).
    modules = discover(bootstrap.settings.modules_packages, bootstrap.settings.modules_disabled)
    vault = VaultManager(bootstrap.settings) if bootstrap.settings.vault_addr else None
    try:
        if vault is not None:
            vault.login()
        loaded = loader.load(
            vault.read_secret() if vault is not None else None,
            modules=module_settings(modules),
        )
    except BaseException:
        if vault is not None:
            vault.close()
        raise
    manager = AppManager(loaded, vault, modules=modules)
    try:
        app = build(manager)
        if start:
            manager.start()
    except BaseException:
        manager.close()
        raise
    return app


def build(manager: AppManager) -> Flask:
    """The Flask app of ``manager`` with the request pipeline, routes and modules."""
    settings = manager.settings
    configure_logging(settings.log_level, settings.effective_log_format, manager.redactor)
    for name in manager.loaded.ignored_vault_keys:
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
    manager.init_app(app)
    routing = app.extensions[ROUTING] = Routing()

    stack.install(app, manager, routing)  # the HTTP stack: core.http.stack.HTTP_STACK
    health.install(app, manager)
    http_metrics.install(app, manager)
    manager.modules.load(app, manager, manager.websocket.events)
    for module, directory in manager.modules.migration_dirs():
        manager.database.migrator.add_module(module, directory)
    manager.actions.load(manager.modules.loaded, manager.loaded.value_of)
    actions.install(app, manager, routing)
    openapi.install(app, manager, routing)
    asyncapi.install(app, manager)
    routing.resolve(app)
    _check_limits(manager, routing)
    register_commands(app)
    app.wsgi_app = wrap_wsgi(manager, app)  # type: ignore[method-assign]
    return app


def _check_limits(manager: AppManager, routing: Routing) -> None:
    """Every endpoint's limits parse (those read from settings included): routes, actions and
    socket events; start-up stops listing the ones that do not."""
    endpoints = [
        *routing.endpoints.values(),
        *(action.endpoint for action in manager.actions.all()),
        *(event.endpoint for event in manager.websocket.events.client.values()),
    ]
    problems = manager.admission.problems(endpoints)
    if problems:
        raise StartupError("invalid rate limits:\n" + "\n".join(f"  - {p}" for p in problems))


def wrap_wsgi(manager: AppManager, app: Flask) -> Any:
    """Outermost first: trusted-proxy fix, then in-flight accounting; ``/socket.io/`` goes
    through the Engine.IO door (core/managers/websocket/door.py) to engine.io.

    Socket.IO's middleware (flask_socketio wraps the Flask app in engine.io's
    ``WSGIApp``) serves ``/socket.io/`` and passes every other request through, at a
    cost per request (under gunicorn it defines a class for each one): plain HTTP
    requests go straight to the Flask app it wraps, Engine.IO requests straight to its
    server, WebSockets without per-message compression
    (:mod:`core.managers.websocket.transport`).
    """
    wsgi_app: Any = app.wsgi_app
    if isinstance(wsgi_app, engineio.WSGIApp):
        http_app, sockets = wsgi_app.wsgi_app, socket_app(wsgi_app, app)
    else:
        http_app = sockets = wsgi_app
    door = manager.websocket.door  # admits Engine.IO openings before engine.io sees them
    door.app = sockets
    wrapped = InFlightMiddleware(http_app, manager.lifecycle, ("/socket.io",), door)
    hops = manager.settings.trusted_proxies
    if hops:
        return ProxyFix(wrapped, x_for=hops, x_proto=hops, x_host=0, x_port=0, x_prefix=0)
    return wrapped
