"""Reading Prometheus text, waiting on real processes, reading gunicorn.conf.py."""

from __future__ import annotations

import os
import runpy
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from unittest.mock import patch

import requests
from prometheus_client.parser import text_string_to_metric_families


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` with exactly ``labels``; None when absent."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return float(found.value)
    return None


def samples(text: str, name: str) -> list[dict[str, str]]:
    """The label sets of every sample called ``name``."""
    return [
        found.labels
        for family in text_string_to_metric_families(text)
        for found in family.samples
        if found.name == name
    ]


def wait_for(predicate: Callable[[], object], timeout: float = 20.0, what: str = "") -> None:
    """Poll until ``predicate`` is truthy; connection errors and timeouts count as "not yet"."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except (requests.ConnectionError, requests.Timeout):
            pass  # not listening yet, or a worker still booting (a slow machine)
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.05)


ROOT = Path(__file__).resolve().parents[2]
GUNICORN_ENV = ("HOST", "PORT", "SHUTDOWN_TIMEOUT", "LOG_LEVEL")


def gunicorn_config(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The names gunicorn.conf.py defines, read with ``env`` (unset names: their defaults)."""
    values = {name: (env or {}).get(name, "") for name in GUNICORN_ENV}
    with patch.dict(os.environ, values):
        return runpy.run_path(str(ROOT / "gunicorn.conf.py"))
