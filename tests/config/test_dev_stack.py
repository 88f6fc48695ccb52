"""config.dev_stack: the settings a running dev stack publishes reach the CLI in dev only,
and never from a stack that is gone (the end-to-end run is in tests/test_devstack.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.dev_stack import running_stack_settings

SETTINGS = {"POSTGRES_DSN": "postgresql://app:app@127.0.0.1:6543/app"}


def publish(devdata: Path, pid: int) -> dict[str, str]:
    devdata.mkdir()
    (devdata / "stack.json").write_text(json.dumps({"pid": pid, "settings": SETTINGS}))
    return {"DEVDATA_DIR": str(devdata)}


def test_a_running_stacks_settings_are_read_in_dev(tmp_path: Path) -> None:
    environ = publish(tmp_path / "devdata", os.getpid())
    assert running_stack_settings(environ) == SETTINGS
    assert running_stack_settings({**environ, "APP_ENV": "dev"}) == SETTINGS


@pytest.mark.parametrize("app_env", ["test", "prod"])
def test_test_and_prod_never_read_them(tmp_path: Path, app_env: str) -> None:
    environ = publish(tmp_path / "devdata", os.getpid())
    assert running_stack_settings({**environ, "APP_ENV": app_env}) == {}


def test_a_file_left_by_a_stack_that_is_gone_is_ignored(tmp_path: Path) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    environ = publish(tmp_path / "devdata", int(gone.stdout))
    assert running_stack_settings(environ) == {}


@pytest.mark.parametrize("content", ["", "not json", "[]", '{"pid": 0, "settings": {}}'])
def test_no_file_or_a_broken_one_reads_as_no_stack(tmp_path: Path, content: str) -> None:
    assert running_stack_settings({"DEVDATA_DIR": str(tmp_path / "none")}) == {}
    environ = publish(tmp_path / "devdata", os.getpid())
    (tmp_path / "devdata" / "stack.json").write_text(content)
    assert running_stack_settings(environ) == {}
