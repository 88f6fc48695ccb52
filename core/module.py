"""``BaseModule``: what a feature module subclasses.

A module is a package ``modules/<name>/`` whose ``__init__.py`` re-exports exactly one
``BaseModule`` subclass, defined in a named module of the package (``module.py`` by
convention: an ``__init__.py`` holds imports, ``__all__`` and a docstring only). The
framework discovers it, orders it after the modules named in ``dependencies``, and calls its
hooks once per app:

- ``register_routes(app)``: register Blueprints (the default registers ``self.blueprint``)
  and the module's CLI ``commands``;
- ``register_actions(actions)``: declare actions beyond the module's ``actions.yaml``
  (``actions`` is an :class:`ActionRegistry`);
- ``register_socket_handlers(events)``: declare Socket.IO events with ``@events.on(name, ...)``
  and ``events.emits(name, Model)`` (:class:`~core.managers.websocket.typed.SocketEvents`);
- ``health()``: a small dict with ``status``; ``close()``: release what the module holds.

The constructor gets a :class:`ModuleHost`: what a module may use while the app is built (the
settings and the managers). Views, handlers, hook callbacks and commands reach the managers
with ``get_app_manager()`` instead.

A module may declare ``settings_model`` (a :class:`~config.modules.ModuleSettings`), resolved
at start-up like the core settings and read with ``app_manager.settings_of(Model)``, and SQL
migrations in ``migrations/``. ``flask --app app module new NAME`` scaffolds one
(docs/modules.md).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

import click
from flask import Blueprint, Flask

from config.modules import ModuleSettings
from config.settings import Settings
from core.managers.api_keys import ApiKeyManager
from core.managers.database import DatabaseManager
from core.managers.hooks import HooksManager
from core.managers.jwt import JWTManager
from core.managers.metrics import MetricsManager
from core.managers.rate_limiter import RateLimiter
from core.managers.redis import RedisManager
from core.managers.services import ServicesManager
from core.managers.state import StateManager
from core.managers.websocket import WebSocketManager
from core.managers.websocket.typed import SocketEvents

M = TypeVar("M", bound=ModuleSettings)


class ModuleHost(Protocol):
    """What a module may use while the app is built: its constructor and hooks get it (the
    AppManager building the app satisfies it). Read-only: a module wires services, hooks,
    indexes and metrics with these; it never replaces one."""

    @property
    def settings(self) -> Settings: ...

    def settings_of(self, model: type[M]) -> M:
        """The module's resolved settings: ``settings_of(ShelfSettings)``."""
        ...

    @property
    def database(self) -> DatabaseManager: ...

    @property
    def redis(self) -> RedisManager: ...

    @property
    def hooks(self) -> HooksManager: ...

    @property
    def state(self) -> StateManager: ...

    @property
    def jwt(self) -> JWTManager: ...

    @property
    def api_keys(self) -> ApiKeyManager: ...

    @property
    def metrics(self) -> MetricsManager: ...

    @property
    def rate_limiter(self) -> RateLimiter: ...

    @property
    def services(self) -> ServicesManager: ...

    @property
    def websocket(self) -> WebSocketManager: ...


class ActionRegistry(Protocol):
    """What ``register_actions`` gets: the app's actions, to declare more in code."""

    def register(self, declaration: Mapping[str, Any]) -> None:
        """Declare an action: the keys of a YAML declaration; ``handler`` may be a function."""
        ...


class BaseModule:
    """Base class of feature modules; one instance per app."""

    #: Names (package names under ``modules/``) of the modules this one needs first.
    dependencies: ClassVar[tuple[str, ...]] = ()
    #: A Blueprint registered by the default ``register_routes``.
    blueprint: ClassVar[Blueprint | None] = None
    #: Click commands or groups added to ``flask --app app ...``.
    commands: ClassVar[Sequence[click.Command]] = ()
    #: The module's settings (``<MODULE>_<FIELD>``), read with ``settings_of(model)``.
    settings_model: ClassVar[type[ModuleSettings] | None] = None

    def __init__(self, name: str, app_manager: ModuleHost) -> None:
        """``app_manager`` is the :class:`ModuleHost` building the app, for wiring services
        at start-up; views, handlers and commands use ``get_app_manager()``."""
        self.name = name
        self.app_manager = app_manager

    @property
    def package(self) -> str:
        """The dotted name of the module's package (``modules.notes``)."""
        defined_in = sys.modules[type(self).__module__]
        if hasattr(defined_in, "__path__"):
            return defined_in.__name__
        return defined_in.__name__.rpartition(".")[0]

    @property
    def directory(self) -> Path:
        """The module's package directory: its ``actions.yaml`` and ``migrations/``."""
        return Path(next(iter(getattr(sys.modules[self.package], "__path__", []))))

    def register_routes(self, app: Flask) -> None:
        if self.blueprint is not None:
            app.register_blueprint(self.blueprint)
        for command in self.commands:
            app.cli.add_command(command)

    def register_actions(self, actions: ActionRegistry) -> None:
        """Declare actions in code; most modules use ``actions.yaml`` instead."""

    def register_socket_handlers(self, events: SocketEvents) -> None:
        """Declare Socket.IO events: ``@events.on(name, payload=Model, ack=Model)`` for what
        clients send, ``events.emits(name, Model)`` for what the server sends (auth, limits,
        validation and acks handled by the WebSocketManager; docs/websockets.md)."""

    def health(self) -> dict[str, Any]:
        return {"status": "ok"}

    def close(self) -> None:
        """Release resources the module holds."""
