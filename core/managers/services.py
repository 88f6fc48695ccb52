"""A named registry modules use to share objects (clients, repositories, domain services).

``services.register("mailer", Mailer(...))`` in one module, ``services.get("mailer")`` in
another. Names are unique: registering a taken name is an error naming both modules, so two
modules cannot silently replace each other's service (name a module's services after the
module: ``self.name``). Services with a ``close()`` method are closed, in
reverse registration order, when the app stops.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, overload

from core.errors import ServiceError
from core.managers.base import Manager

logger = logging.getLogger(__name__)
T = TypeVar("T")


class ServicesManager(Manager):
    name = "services"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._services: dict[str, object] = {}
        self._owners: dict[str, str] = {}
        self._owner: str | None = None

    @contextmanager
    def owned_by(self, module: str) -> Iterator[None]:
        """Services registered inside the block belong to ``module`` (errors name it)."""
        previous, self._owner = self._owner, module
        try:
            yield
        finally:
            self._owner = previous

    def register(self, name: str, service: object) -> None:
        with self._lock:
            if name in self._services:
                first, second = self._owners.get(name), self._owner
                if first is None or second is None:
                    raise ServiceError(f"service {name!r} is already registered")
                raise ServiceError(
                    f"service {name!r} is already registered by module {first!r}; "
                    f"module {second!r} registers it too (name a module's services after "
                    "the module)"
                )
            self._services[name] = service
            if self._owner is not None:
                self._owners[name] = self._owner

    @overload
    def get(self, name: str) -> Any: ...
    @overload
    def get(self, name: str, expected: type[T]) -> T: ...
    def get(self, name: str, expected: type[Any] | None = None) -> Any:
        """The service registered as ``name``; with ``expected``, checked to be of that type."""
        try:
            service = self._services[name]
        except KeyError:
            raise ServiceError(f"no service named {name!r}") from None
        if expected is not None and not isinstance(service, expected):
            raise ServiceError(f"service {name!r} is not a {expected.__name__}")
        return service

    def __contains__(self, name: object) -> bool:
        return name in self._services

    def names(self) -> list[str]:
        return sorted(self._services)

    def close(self) -> None:
        with self._lock:
            services, self._services = list(self._services.items()), {}
            self._owners = {}
        for name, service in reversed(services):
            close = getattr(service, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:
                    logger.exception("service close failed", extra={"service": name})
