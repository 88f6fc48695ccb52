"""Reading Prometheus text, waiting on real processes, reading gunicorn.conf.py, running
the production server."""

from __future__ import annotations

import contextlib
import os
import runpy
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from unittest.mock import patch

import requests
from prometheus_client.parser import text_string_to_metric_families

from core.devstack import free_port, wait_for


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


ROOT = Path(__file__).resolve().parents[2]
GUNICORN_ENV = ("HOST", "PORT", "SHUTDOWN_TIMEOUT", "LOG_LEVEL")


def gunicorn_config(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The names gunicorn.conf.py defines, read with ``env`` (unset names: their defaults)."""
    values = {name: (env or {}).get(name, "") for name in GUNICORN_ENV}
    with patch.dict(os.environ, values):
        return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


#: How long a server may take to serve /health/ready. Generous and bounded: on a busy shared
#: machine a gunicorn boot with its start-up checks has taken over 20 s.
READY_TIMEOUT = 90.0


class ServedProcess:
    """The app served by a child process on a free loopback port, logging to a file.

    It runs in its own session (process group), so ``stop()`` kills it with every worker it
    forked, and a failed start stops it before raising: no test leaves it behind, whatever
    fails (the session-end sweep in tests.support.processes is the net under this).
    """

    def __init__(self, argv: list[str], env: dict[str, str | None], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._log_file = log.open("wb")
        # A None value unsets the variable; HOST may be overridden (still reached on loopback).
        merged = {**os.environ, "HOST": "127.0.0.1", **env, "PORT": str(self.port)}
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={name: value for name, value in merged.items() if value is not None},
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log.read_text()

    def wait_ready(self) -> None:
        """Wait for /health/ready to answer 200; stop the process if it never does."""
        try:
            wait_for(
                lambda: (
                    self.proc.poll() is not None
                    or requests.get(f"{self.url}/health/ready", timeout=2).status_code == 200
                ),
                timeout=READY_TIMEOUT,
                what=f"{Path(self.proc.args[0]).name} to serve /health/ready",
            )
            assert self.proc.poll() is None, self.output()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._log_file.close()


GUNICORN = Path(sys.executable).parent / "gunicorn"


class Gunicorn(ServedProcess):
    """A gunicorn master (and its worker) started with the project's gunicorn.conf.py."""

    def __init__(self, env: dict[str, str | None], log: Path, args: tuple[str, ...]) -> None:
        super().__init__([str(GUNICORN), "-c", "gunicorn.conf.py", *args], env, log)


class DevelopmentServer(ServedProcess):
    """``python app.py``, the development server."""

    def __init__(self, env: dict[str, str | None], log: Path) -> None:
        super().__init__([sys.executable, "app.py"], env, log)
