"""The Flask CLI builds an unstarted app for its commands, and refuses to serve one."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from app import FLASK_RUN_REFUSED
from core.devstack import free_port

ROOT = Path(__file__).resolve().parent.parent.parent


def _flask(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FLASK_")},
        "APP_ENV": "test",
        "SECRETS_DIR": str(tmp_path),
        # Nothing listens here: a command that pinged a store would fail.
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
    }
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_flask_run_refuses_in_one_line_pointing_to_the_real_servers(tmp_path: Path) -> None:
    port = free_port()
    result = _flask(tmp_path, "run", "--port", str(port))
    assert result.returncode == 1
    assert result.stderr == f"Error: {FLASK_RUN_REFUSED}\n"
    assert "make run" in result.stderr
    assert "python app.py" in result.stderr
    assert result.stdout == ""
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # nothing was served


def test_other_commands_build_an_unstarted_app_without_the_stores(tmp_path: Path) -> None:
    result = _flask(tmp_path, "routes")
    assert result.returncode == 0, result.stderr
    assert "/health/ready" in result.stdout
    assert "/actions/<name>" in result.stdout
