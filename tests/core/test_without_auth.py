"""``MODULES_DISABLED=auth``: core needs no module by name. Without the module that owns users
nobody can log in, but the app starts and serves actions and API-key routes, keys are made
with the CLI, and the ``core.testing`` plugin still serves a module whose tests need no users.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

from flask.testing import FlaskClient

from core.app_manager import get_app_manager
from core.testing import AppFactory, problem
from tests.identity.test_cli import create_key

ROOT = Path(__file__).resolve().parents[2]


def test_the_app_serves_actions_and_api_key_routes_without_the_auth_module(
    make_app: AppFactory,
) -> None:
    app = make_app({"MODULES_DISABLED": "auth"})
    client: FlaskClient = app.test_client()
    with app.app_context():
        status = {item["name"]: item["enabled"] for item in get_app_manager().modules.status()}
    assert status["auth"] is False
    assert status["api_keys"] is True

    _, key = create_key(app, "--name", "no-users")  # `flask api-keys create`
    whoami = client.get("/keyauth/whoami", headers={"X-API-Key": key})
    assert whoami.status_code == 200, whoami.get_json()
    assert whoami.get_json()["name"] == "no-users"
    pong = client.post("/actions/system.ping", json={})
    assert pong.status_code == 200, pong.get_json()
    listed = client.get("/actions").get_json()["items"]
    assert "system.ping" in {action["name"] for action in listed}

    # Nobody can log in, so the routes that need a user's token answer 401; none of the auth
    # module's routes exists.
    problem(client.get("/userauth/api-keys"), 401, "AUTH_REQUIRED")
    problem(client.post("/public/login", json={}), 404, "NOT_FOUND")
    paths = client.get("/openapi.json").get_json()["paths"]
    assert "/keyauth/whoami" in paths
    assert not [path for path in paths if path in ("/public/login", "/public/register")]


TINY_MODULE = """
from flask import Blueprint

from core.http.auth import current_principal
from core.module import BaseModule

bp = Blueprint("tiny", __name__)


@bp.get("/keyauth/tiny/caller")
def caller():
    return {"name": current_principal().name}


class TinyModule(BaseModule):
    blueprint = bp
"""

TINY_TESTS = """
import pytest

from core.testing import problem


def test_an_api_key_reaches_the_module(client, api_key):
    answer = client.get("/keyauth/tiny/caller", headers={"X-API-Key": api_key["key"]})
    assert answer.get_json() == {"name": api_key["name"]}
    problem(client.get("/keyauth/tiny/caller"), 401, "API_KEY_REQUIRED")


def test_the_app_manager_is_the_apps(app, app_manager):
    assert [m.name for m in app_manager.modules.loaded if m.name == "auth"] == []
    assert "tiny" in [m.name for m in app_manager.modules.loaded]


def test_no_module_gives_users(request):
    with pytest.raises(pytest.FixtureLookupError):
        request.getfixturevalue("user")
"""


def test_the_testing_plugin_serves_a_module_that_needs_no_users(tmp_path: Path) -> None:
    """A project of its own (one tiny module, its tests, the plugin) run by pytest with the
    auth module disabled: the plugin starts, no user fixture exists, the rest works."""
    package = tmp_path / "tiny_modules"
    (package / "tiny").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "tiny" / "module.py").write_text(TINY_MODULE)
    (package / "tiny" / "__init__.py").write_text(
        'from tiny_modules.tiny.module import TinyModule\n\n__all__ = ["TinyModule"]\n'
    )
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_tiny.py").write_text(textwrap.dedent(TINY_TESTS))
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["core.testing.plugin"]\n')
    pytest_options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]
    (tmp_path / "pytest.ini").write_text(
        f"[pytest]\naddopts = {pytest_options['ini_options']['addopts']}\n"
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHON"))}
    environ.update(
        PYTHONPATH=str(ROOT),
        MODULES_PACKAGES="modules,tiny_modules",
        MODULES_DISABLED="auth",
    )
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "tests", "-q"],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "3 passed" in run.stdout
