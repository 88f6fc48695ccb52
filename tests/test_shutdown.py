"""SIGTERM on the development server: readiness 503 at once, in-flight requests finish,
managers close, exit 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from core.devstack import free_port

ROOT = Path(__file__).resolve().parent.parent


def wait_until(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.mark.smoke
def test_sigterm_drains_a_request_in_flight_then_exits_zero(
    app_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=ROOT,
        env={**os.environ, **app_env, "PORT": str(port), "SHUTDOWN_TIMEOUT": "10"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(
            lambda: (
                proc.poll() is not None
                or requests.get(f"{base}/health/ready", timeout=2).status_code == 200
            )
        )
        assert proc.poll() is None, (tmp_path / "server.log").read_text()

        result: dict[str, Any] = {}

        def slow_request() -> None:
            response = requests.get(f"{base}/public/probe/slow?seconds=2", timeout=10)
            result["status"], result["body"] = response.status_code, response.json()

        worker = threading.Thread(target=slow_request)
        worker.start()
        time.sleep(0.3)  # the slow request is now being served
        proc.send_signal(signal.SIGTERM)

        ready = requests.get(f"{base}/health/ready", timeout=2)
        assert ready.status_code == 503
        assert ready.json()["reason"] == "shutting_down"

        worker.join(timeout=10)
        assert result == {"status": 200, "body": {"slept": 2.0}}
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    output = (tmp_path / "server.log").read_text()
    assert "shutdown requested" in output
    assert "app stopped" in output
