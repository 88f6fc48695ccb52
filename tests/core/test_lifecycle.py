"""Start-up and shutdown events, start-up failures, and the server's port check."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from app import create_app
from core.devstack import free_port
from core.errors import StartupError
from core.lifecycle import Lifecycle
from core.testing import AppFactory, manager_of

ROOT = Path(__file__).resolve().parent.parent.parent


def test_app_started_and_app_stopping_are_emitted_once_each(make_app: AppFactory) -> None:
    app = make_app()
    manager = manager_of(app)
    probe = manager.modules.get("probe")
    assert probe.events == ["started"]
    manager.close()
    manager.close()  # idempotent
    assert probe.events == ["started", "stopping"]


def test_an_unreachable_store_at_start_up_is_one_clear_error(app_env: dict[str, str]) -> None:
    environ = {**app_env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    with pytest.raises(
        StartupError,
        match=r"^redis is unreachable at start-up: ConnectionError "
        r"\(run `make run` to start the dev stack\)$",
    ):
        create_app(environ)


def test_the_server_reports_a_port_in_use_in_one_line(app_env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "app.py"],
            cwd=ROOT,
            env={**os.environ, **app_env, "PORT": str(port)},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"cannot start: port {port} on 127.0.0.1 is already in use (set PORT to another port)"
    )
    assert "Traceback" not in result.stderr


def test_prod_with_missing_settings_prints_every_problem_and_exits(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "app.py"],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "APP_ENV": "prod", "SECRETS_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("cannot start: invalid configuration:")
    for name in ("MONGODB_URI", "POSTGRES_DSN", "REDIS_URL", "JWT_SECRET", "ENCRYPTION_KEY"):
        assert f"{name} is required in prod" in result.stderr
    assert "Traceback" not in result.stderr


def test_waiting_for_idle_wakes_when_the_last_request_ends_and_times_out_otherwise() -> None:
    """The count is kept under a native lock and the condition taken only while someone
    waits (docs/decisions.md): the waiter is still woken by the last request's end."""
    lifecycle = Lifecycle()
    assert lifecycle.wait_idle(0)
    lifecycle.begin()
    lifecycle.begin()
    assert not lifecycle.wait_idle(0.05)  # two in flight: the timeout runs out

    answers: list[bool] = []
    waiter = threading.Thread(target=lambda: answers.append(lifecycle.wait_idle(60)))
    waiter.start()
    lifecycle.end()
    assert lifecycle.in_flight == 1
    assert waiter.is_alive()  # one still in flight: it keeps waiting
    lifecycle.end()
    waiter.join(60)
    assert answers == [True]
    assert lifecycle.in_flight == 0
