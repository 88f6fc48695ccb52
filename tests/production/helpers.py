"""Reading Prometheus text, waiting on real processes, reading gunicorn.conf.py, running
the production server."""

from __future__ import annotations

import json
import os
import runpy
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from unittest.mock import patch

import requests
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from core.app_manager import get_app_manager
from core.devstack import free_port
from core.devstack.process import ChildProcess, NotReady


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


def json_lines(text: str) -> list[dict[str, Any]]:
    """A log of JSON lines (every line gunicorn writes with gunicorn.conf.py), parsed."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


ROOT = Path(__file__).resolve().parents[2]
GUNICORN_ENV = ("HOST", "PORT", "SHUTDOWN_TIMEOUT", "LOG_LEVEL")


def gunicorn_config(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The names gunicorn.conf.py defines, read with ``env`` (unset names: their defaults)."""
    values = {name: (env or {}).get(name, "") for name in GUNICORN_ENV}
    with patch.dict(os.environ, values):
        return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


def access_tokens(app: Flask, users: int, name: str) -> list[str]:
    """Access tokens of ``users`` users (``<name>-<n>``), issued by the app's JWTManager: the
    same settings as an app served on the same environment (secret, issuer, audience)."""
    with app.app_context():
        jwt = get_app_manager().jwt
        return [
            jwt.issue_pair(f"{name}-{n}", ["user"], username=f"{name}{n}").access_token
            for n in range(users)
        ]


#: How long a server may take to serve /health/ready. Generous and bounded: on a busy shared
#: machine a gunicorn boot with its start-up checks has taken over 20 s.
READY_TIMEOUT = 90.0


class ServedProcess:
    """The app served by a child process on a free loopback port, logging to a file.

    A :class:`~core.devstack.process.ChildProcess`: its own session, so ``stop()`` kills it
    with every worker it forked, and a failed start kills it before raising: no test leaves
    it behind, whatever fails (the session-end sweep in tests.support.processes is the net
    under this).
    """

    def __init__(self, argv: list[str], env: dict[str, str | None], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        # A None value unsets the variable; HOST may be overridden (still reached on loopback).
        merged = {**os.environ, "HOST": "127.0.0.1", **env, "PORT": str(self.port)}
        environ = {name: value for name, value in merged.items() if value is not None}
        self.child = ChildProcess(argv, log, env=environ, cwd=ROOT).start()
        assert self.child.proc is not None
        self.proc = self.child.proc

    def output(self) -> str:
        return self.log.read_text()

    def wait_ready(self) -> None:
        """Wait for /health/ready to answer 200; kill the process if it never does."""
        what = f"{Path(self.child.argv[0]).name} to serve /health/ready"
        try:
            self.child.wait_ready(
                lambda: requests.get(f"{self.url}/health/ready", timeout=2).status_code == 200,
                READY_TIMEOUT,
                what,
            )
        except NotReady as exc:
            raise AssertionError(f"{exc}\n{self.output()}") from None

    def stop(self) -> None:
        self.child.kill()


GUNICORN = Path(sys.executable).parent / "gunicorn"


class Gunicorn(ServedProcess):
    """A gunicorn master (and its worker) started with the project's gunicorn.conf.py."""

    def __init__(self, env: dict[str, str | None], log: Path, args: tuple[str, ...]) -> None:
        super().__init__([str(GUNICORN), "-c", "gunicorn.conf.py", *args], env, log)


class DevelopmentServer(ServedProcess):
    """``python app.py``, the development server."""

    def __init__(self, env: dict[str, str | None], log: Path) -> None:
        super().__init__([sys.executable, "app.py"], env, log)
