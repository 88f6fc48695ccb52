"""Discovers feature modules, orders them by their dependencies and runs their hooks.

Every sub-package of each package in ``MODULES_PACKAGES`` (default ``modules``) is a module;
its name is the sub-package name. :func:`discover` runs once per app build, before the
settings are resolved (module settings need the module classes); the :class:`ModuleManager`
is given its result. Start-up stops with a :class:`~core.errors.ModuleError`
naming the module when one fails to import, defines no (or several) ``BaseModule``
subclasses, depends on a module that does not exist or is disabled, or is part of a cycle;
and, while loading, when a module's name is storage it does not own (:func:`_name_taken`):
one of the framework's (``core/managers/names.py``) or another module's MongoDB collection.
``flask module new`` refuses such names too; a hand-written module is refused here. Modules
listed in ``MODULES_DISABLED`` are not imported at all.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import pkgutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from flask import Flask

from config.modules import ModuleSettings
from core.errors import ModuleError, StartupError
from core.managers.base import Manager
from core.managers.hooks import HooksManager
from core.managers.names import FRAMEWORK_STORAGE, SURFACES
from core.managers.services import ServicesManager
from core.managers.websocket.typed import SocketEvents
from core.module import BaseModule, ModuleHost

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DiscoveredModule:
    name: str
    package: str
    cls: type[BaseModule]


class ModuleManager(Manager):
    name = "modules"

    def __init__(
        self,
        discovered: Sequence[DiscoveredModule],
        disabled: Iterable[str] = (),
        *,
        services: ServicesManager,
        hooks: HooksManager,
    ) -> None:
        self.services = services
        self.hooks = hooks
        #: The enabled modules in dependency order, as :func:`discover` found them.
        self.discovered = tuple(discovered)
        self.disabled = set(disabled)
        self.loaded: list[BaseModule] = []

    def load(self, app: Flask, app_manager: ModuleHost, events: SocketEvents) -> None:
        """Instantiate modules in dependency order (each gets ``app_manager``, the composition
        root building the app) and register their routes and socket events (``events``).
        A module named after storage it does not own stops start-up (:func:`_name_taken`)."""
        mongo = app_manager.database.mongo
        #: collection -> the module that declared it first
        owners: dict[str, str] = {}
        for discovered in self.discovered:
            _name_taken(discovered.name, owners)
            before = set(mongo.declared_collections())
            with self.services.owned_by(discovered.name):
                module = discovered.cls(discovered.name, app_manager)
                module.register_routes(app)
                module.register_socket_handlers(events)
            for collection in set(mongo.declared_collections()) - before:
                owners.setdefault(collection, discovered.name)
            self.loaded.append(module)
            self.hooks.emit("module.loaded", module=module)
            logger.debug("module loaded", extra={"feature_module": discovered.name})
        for module in self.loaded:  # an owner loaded after the module of its collection's name
            _name_taken(module.name, owners)

    def migration_dirs(self) -> list[tuple[str, Path]]:
        """``(module, directory)`` of each loaded module with a ``migrations/``, in load order."""
        return [
            (module.name, module.directory / "migrations")
            for module in self.loaded
            if (module.directory / "migrations").is_dir()
        ]

    def get(self, name: str) -> BaseModule:
        for module in self.loaded:
            if module.name == name:
                return module
        raise KeyError(name)

    def status(self) -> list[dict[str, Any]]:
        """Name, state, dependencies and health of every module, disabled ones included."""
        items: list[dict[str, Any]] = []
        for module in self.loaded:
            try:
                health = dict(module.health())
            except Exception as exc:
                logger.exception("module health failed", extra={"feature_module": module.name})
                health = {"status": "error", "error": type(exc).__name__}
            items.append(
                {
                    "name": module.name,
                    "enabled": True,
                    "dependencies": list(module.dependencies),
                    "health": health,
                }
            )
        for name in sorted(self.disabled):
            items.append({"name": name, "enabled": False, "dependencies": [], "health": None})
        return items

    def close(self) -> None:
        modules, self.loaded = self.loaded, []
        for module in reversed(modules):
            try:
                module.close()
            except Exception:
                logger.exception("module close failed", extra={"feature_module": module.name})


def discover(packages: Iterable[str], disabled: Iterable[str] = ()) -> list[DiscoveredModule]:
    """Import every enabled module package of ``packages``; returns them in dependency order."""
    skipped = set(disabled)
    found: dict[str, DiscoveredModule] = {}
    for package_name in packages:
        for name, dotted in _subpackages(package_name):
            if name in found:
                raise ModuleError(name, f"defined twice ({found[name].package} and {dotted})")
            if name in skipped:
                continue
            found[name] = DiscoveredModule(name, dotted, _module_class(name, dotted))
    return order_by_dependencies(found, skipped)


def _name_taken(name: str, owners: dict[str, str]) -> None:
    """Refuse a module whose name is storage it does not own: its data is named after it (the
    scaffold's collection, its Redis keys), so it would write into that storage."""
    owner = owners.get(name, name)
    if name in FRAMEWORK_STORAGE and name not in SURFACES:
        taken = FRAMEWORK_STORAGE[name]
    elif owner != name:
        taken = f"module {owner!r}'s MongoDB collection"
    else:
        return
    raise ModuleError(
        name,
        f"the name is {taken}: a module of that name would write into it; rename the module "
        "(docs/modules.md, 'Names')",
    )


def module_settings(modules: Iterable[DiscoveredModule]) -> dict[str, type[ModuleSettings]]:
    """Module name -> settings model, for the modules that declare one."""
    return {m.name: m.cls.settings_model for m in modules if m.cls.settings_model is not None}


def _subpackages(package_name: str) -> list[tuple[str, str]]:
    try:
        package = importlib.import_module(package_name)
    except ImportError as exc:
        raise StartupError(f"modules package {package_name!r} cannot be imported: {exc}") from exc
    paths = getattr(package, "__path__", None)
    if paths is None:
        raise StartupError(f"modules package {package_name!r} is not a package")
    return sorted(
        (info.name, f"{package_name}.{info.name}")
        for info in pkgutil.iter_modules(paths)
        if info.ispkg and not info.name.startswith("_")
    )


def _module_class(name: str, dotted: str) -> type[BaseModule]:
    try:
        package = importlib.import_module(dotted)
    except Exception as exc:
        raise ModuleError(name, f"import failed: {type(exc).__name__}: {exc}") from exc
    classes = _module_classes(package)
    if len(classes) != 1:
        found = ", ".join(c.__name__ for c in classes) or "none"
        raise ModuleError(name, f"must define exactly one BaseModule subclass (found {found})")
    return classes[0]


def _module_classes(package: ModuleType) -> list[type[BaseModule]]:
    return [
        obj
        for _, obj in inspect.getmembers(package, inspect.isclass)
        if issubclass(obj, BaseModule)
        and obj is not BaseModule
        and (
            obj.__module__ == package.__name__ or obj.__module__.startswith(package.__name__ + ".")
        )
    ]


def order_by_dependencies(
    modules: dict[str, DiscoveredModule], disabled: set[str] | None = None
) -> list[DiscoveredModule]:
    """Topological order (alphabetical among equals); names the module at fault otherwise."""
    disabled = disabled or set()
    for name, module in sorted(modules.items()):
        for dependency in module.cls.dependencies:
            if dependency in disabled:
                raise ModuleError(name, f"depends on {dependency!r}, which is disabled")
            if dependency not in modules:
                raise ModuleError(name, f"depends on {dependency!r}, which does not exist")

    ordered: list[DiscoveredModule] = []
    state: dict[str, str] = {}  # "visiting" while on the DFS stack, "done" once placed

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = [*path[path.index(name) :], name]
            raise ModuleError(name, "dependency cycle: " + " -> ".join(cycle))
        state[name] = "visiting"
        for dependency in sorted(modules[name].cls.dependencies):
            visit(dependency, [*path, name])
        state[name] = "done"
        ordered.append(modules[name])

    for name in sorted(modules):
        visit(name, [])
    return ordered
