"""The one shape every manager has (the Flask extension pattern).

- constructed from settings and the managers it needs, without an app (never the
  AppManager);
- ``init_app(app)`` wires it in and stores it in ``app.extensions[name]``;
- ``health()`` returns ``{"status", "latency_ms", ...}`` and never raises;
- ``close()`` releases what it holds and is idempotent.

A manager that fronts a backing store also names it in ``readiness_checks()`` (the checks
``/health/ready`` runs) and lists the driver exceptions that mean "the store is unreachable"
in ``unavailable_errors`` so the HTTP layer can answer 503 ``DEPENDENCY_UNAVAILABLE``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar, cast

from flask import Flask

HealthResult = dict[str, Any]
HealthCheck = Callable[[], HealthResult]
T = TypeVar("T")


class Manager:
    """Base class for managers; subclasses set ``name`` and override what they need."""

    name: ClassVar[str]
    #: Driver exceptions meaning "the dependency is unreachable" -> 503 DEPENDENCY_UNAVAILABLE.
    unavailable_errors: ClassVar[tuple[type[BaseException], ...]] = ()

    def init_app(self, app: Flask) -> None:
        app.extensions[self.name] = self

    def start(self) -> None:
        """Start-up work that needs the backing store (pings, indexes, listeners); run by the
        AppManager in start order, skipped by CLI apps. Default: nothing."""

    def health(self) -> HealthResult:
        return {"status": "ok", "latency_ms": 0.0}

    def readiness_checks(self) -> dict[str, HealthCheck]:
        """Named checks for ``/health/ready``; only managers of backing stores have any."""
        return {}

    def close(self) -> None:
        """Release pools, threads and connections. Safe to call more than once."""


def timed_check(probe: Callable[[], Any], **details: Any) -> HealthResult:
    """Run ``probe`` and report ``ok`` with its latency, or ``error`` with the error's type.

    The message of a driver error can include hosts or credentials, so only the type name is
    reported; the full error goes to the log by the caller if it wants.
    """
    start = time.perf_counter()
    try:
        probe()
    except Exception as exc:  # noqa: BLE001 - a health check reports any failure, never raises
        return {
            "status": "error",
            "latency_ms": round((time.perf_counter() - start) * 1000, 2),
            "error": type(exc).__name__,
            **details,
        }
    return {
        "status": "ok",
        "latency_ms": round((time.perf_counter() - start) * 1000, 2),
        **details,
    }


class SharedResult(Generic[T]):
    """``compute()`` at most once per ``ttl`` seconds, and never twice at the same time:
    callers arriving while it runs wait for that run and share its result.

    For expensive checks that anyone may trigger (readiness, the dependency gauges), so a
    flood of callers costs one run per ``ttl``.
    """

    def __init__(self, compute: Callable[[], T], ttl: float) -> None:
        self._compute = compute
        self._ttl = ttl
        self._lock = threading.Lock()
        self._value: T | None = None
        self._at = float("-inf")
        self._runs = 0

    def __call__(self) -> T:
        runs_seen = self._runs
        with self._lock:
            fresh = time.monotonic() - self._at < self._ttl
            if not (fresh or self._runs != runs_seen):  # else: shared with a run just ended
                self._value = self._compute()
                self._at = time.monotonic()
                self._runs += 1
            return cast(T, self._value)
