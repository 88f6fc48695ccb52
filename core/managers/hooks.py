"""Named events with prioritised callbacks.

``hooks.register("user.registered", callback, priority=10)`` and
``hooks.emit("user.registered", user=user)``. Callbacks run in ascending priority (then in
registration order). A failing callback is logged with the event name and the remaining
callbacks still run, unless it was registered ``strict=True``: then the error propagates to
the emitter, which is how a callback vetoes an operation.

Events the framework emits (payloads in docs/modules.md):
``app.started``, ``app.stopping``, ``module.loaded``, ``state.changed`` (``name``, ``old``,
``new``: StateValue).
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.managers.base import Manager

logger = logging.getLogger(__name__)

HookCallback = Callable[..., Any]


@dataclass(order=True, frozen=True)
class _Registration:
    priority: int
    sequence: int
    callback: HookCallback = field(compare=False)
    strict: bool = field(compare=False)


class HooksManager(Manager):
    """Registry of named events; thread-safe registration, lock-free emission."""

    name = "hooks"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counter = itertools.count()
        self._hooks: dict[str, tuple[_Registration, ...]] = {}

    def register(
        self, event: str, callback: HookCallback, *, priority: int = 100, strict: bool = False
    ) -> None:
        """Call ``callback(**payload)`` on ``event``; lower ``priority`` runs first."""
        registration = _Registration(priority, next(self._counter), callback, strict)
        with self._lock:
            self._hooks[event] = tuple(sorted((*self._hooks.get(event, ()), registration)))

    def on(
        self, event: str, *, priority: int = 100, strict: bool = False
    ) -> Callable[[HookCallback], HookCallback]:
        """Decorator form of :meth:`register`."""

        def decorator(callback: HookCallback) -> HookCallback:
            self.register(event, callback, priority=priority, strict=strict)
            return callback

        return decorator

    def emit(self, event: str, **payload: Any) -> list[Any]:
        """Run every callback of ``event``; returns their results in the order they ran."""
        results = []
        for registration in self._hooks.get(event, ()):
            try:
                results.append(registration.callback(**payload))
            except Exception:
                if registration.strict:
                    raise
                logger.exception(
                    "hook callback failed",
                    extra={"event": event, "callback": _name_of(registration.callback)},
                )
        return results

    def events(self) -> dict[str, int]:
        """Event names with their number of callbacks."""
        return {event: len(regs) for event, regs in sorted(self._hooks.items())}

    def close(self) -> None:
        with self._lock:
            self._hooks = {}


def _name_of(callback: HookCallback) -> str:
    module = getattr(callback, "__module__", "?")
    return f"{module}.{getattr(callback, '__qualname__', repr(callback))}"
