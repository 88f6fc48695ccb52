"""The layer check of ``make lint`` (tests/support/layers.py): it passes on the project and
fails on each way a floor can be broken, typing-only and function-local imports included."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.layers import ROOT, SOURCES, check


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the checked sources, to break on purpose."""
    for source in SOURCES:
        if (ROOT / source).is_dir():
            shutil.copytree(
                ROOT / source, tmp_path / source, ignore=shutil.ignore_patterns("*.pyc")
            )
        else:
            shutil.copy2(ROOT / source, tmp_path / source)
    return tmp_path


def append(path: Path, code: str) -> int:
    """Append ``code`` to ``path``; the line number where it starts."""
    text = path.read_text(encoding="utf-8")
    path.write_text(text + "\n" + code, encoding="utf-8")
    return text.count("\n") + 2


@pytest.mark.project_wide
def test_the_project_keeps_its_floors_and_has_no_import_circle() -> None:
    assert check() == []


def test_make_lint_runs_the_check() -> None:
    assert "python -m tests.support.layers" in (ROOT / "Makefile").read_text()
    ok = subprocess.run(
        [sys.executable, "-m", "tests.support.layers"], cwd=ROOT, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stdout
    assert "no upward import, no circle" in ok.stdout


def test_a_function_local_upward_import_is_refused(tree: Path) -> None:
    line = append(
        tree / "core/managers/hooks.py",
        "def _peek():\n    from core.http.routing import Routing\n\n    return Routing\n",
    )
    assert check(tree) == [
        f"core/managers/hooks.py:{line + 1}: core.managers.hooks (managers) imports upward "
        "core.http.routing (http)"
    ]


def test_a_typing_only_upward_import_is_refused(tree: Path) -> None:
    line = append(
        tree / "core/edge/json.py",
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
        "    from core.app_manager import AppManager\n",
    )
    upward, *circles = check(tree)
    assert upward == (
        f"core/edge/json.py:{line + 3}: core.edge.json (edge) imports upward "
        "core.app_manager (app_manager)"
    )
    # The AppManager reaches core.edge.json through the managers: a circle as well.
    assert [c.startswith("import circle") and "core.edge.json" in c for c in circles] == [True]


def test_an_import_circle_within_one_floor_is_refused(tree: Path) -> None:
    append(tree / "core/http/routing.py", "from core.http import openapi\n")
    problems = check(tree)
    assert len(problems) == 1
    assert problems[0].startswith("import circle of ")
    assert "core.http.openapi" in problems[0]
    assert "core.http.routing" in problems[0]


def test_a_circle_through_a_package_init_is_refused(tree: Path) -> None:
    """``from pkg import sub`` runs ``pkg/__init__.py``, which imports the importer back: a
    circle, though ``sub`` itself imports nothing of the package."""
    append(tree / "core/managers/database/mongo.py", "from core.managers.database import json\n")
    [problem] = check(tree)
    assert problem.startswith("import circle of ")
    # The package and the importer, through whichever sibling the package imports first.
    circle = set(problem.split(": ", 1)[1].split(", "))
    assert {"core.managers.database", "core.managers.database.mongo"} <= circle


def test_make_lint_refuses_a_circle_through_a_package_init(tree: Path) -> None:
    """The command ``make lint`` runs, on a copy where a sibling reads its package."""
    append(tree / "core/managers/redis/pubsub.py", "from core.managers.redis import codec\n")
    (tree / "tests/support").mkdir(parents=True)
    for name in ("tests/__init__.py", "tests/support/__init__.py", "tests/support/layers.py"):
        shutil.copy2(ROOT / name, tree / name)
    refused = subprocess.run(
        [sys.executable, "-m", "tests.support.layers"], cwd=tree, capture_output=True, text=True
    )
    assert refused.returncode == 1, refused.stdout
    assert refused.stdout.splitlines() == [
        "import circle of 3 modules: core.managers.redis, core.managers.redis.manager, "
        "core.managers.redis.pubsub",
        "layer check: 1 problem(s); the floors are in __main__.LAYERS",
    ]


def test_importing_a_sibling_module_directly_is_no_circle(tree: Path) -> None:
    """Inside a package, ``from pkg.sub import name`` needs only ``sub``: the package's own
    ``__init__`` is already running when its modules are imported."""
    append(tree / "core/managers/database/mongo.py", "from core.managers.database.json import *\n")
    assert check(tree) == []


def test_an_outside_import_of_a_submodule_runs_its_package(tree: Path) -> None:
    """``from a.b.c import x`` from outside ``a.b`` runs ``a/b/__init__.py`` first: when that
    ``__init__`` imports the importer back, it is a circle."""
    append(tree / "core/managers/hooks.py", "from core.managers.database.json import *\n")
    append(tree / "core/managers/database/__init__.py", "from core.managers import hooks\n")
    problems = check(tree)
    assert len(problems) == 1
    assert problems[0].startswith("import circle of ")
    assert "core.managers.database, " in problems[0]
    assert "core.managers.hooks" in problems[0]


def test_an_init_file_holding_code_is_refused(tree: Path) -> None:
    """Imports, ``__all__`` and a docstring pass; a function, a class or another assignment in
    a package ``__init__`` is reported with its line."""
    init = tree / "core/managers/state/__init__.py"
    line = append(init, "TIMEOUT = 5\n\n\ndef helper():\n    return TIMEOUT\n")
    assert check(tree) == [
        f"core/managers/state/__init__.py:{line}: an __init__.py only re-exports "
        "(imports, __all__, a docstring): move this assign into a named module",
        f"core/managers/state/__init__.py:{line + 3}: an __init__.py only re-exports "
        "(imports, __all__, a docstring): move this function into a named module",
    ]


def test_a_module_in_no_floor_must_be_placed(tree: Path) -> None:
    (tree / "core/newfloor.py").write_text("X = 1\n", encoding="utf-8")
    assert check(tree) == [
        "core.newfloor: in no floor (add it to LAYERS in layers.py)",
    ]


def test_managers_are_reached_only_through_get_app_manager() -> None:
    """One accessor: no framework or module code reads the AppManager out of
    ``app.extensions`` itself or keeps a "current" one of its own."""
    files = [*(ROOT / "core").rglob("*.py"), *(ROOT / "modules").rglob("*.py"), ROOT / "app.py"]
    offenders = [
        str(path.relative_to(ROOT))
        for path in files
        if path != ROOT / "core/app_manager.py"
        for text in [path.read_text(encoding="utf-8")]
        if 'extensions["app_manager"]' in text or "AppManager.current(" in text
    ]
    assert offenders == []


#: What belongs to feature modules (the auth and admin modules' routes, the auth service):
#: nothing in core or config names it, so any module can be disabled or replaced.
MODULE_NAMES = ("/userauth/admin", "/public/login", "/public/register", 'services.get("auth"')


def test_core_knows_no_module_by_name() -> None:
    """Core and config name no module: no route or service of one, no import of ``modules``
    (the layer check allows the top floor's test plugin and dev stack to import it)."""
    files = [*(ROOT / "core").rglob("*.py"), *(ROOT / "config").rglob("*.py"), ROOT / "app.py"]
    offenders = []
    for path in sorted(files):
        relative = str(path.relative_to(ROOT))
        text = path.read_text(encoding="utf-8")
        offenders += [f"{relative}: {name}" for name in MODULE_NAMES if name in text]
        for node in ast.walk(ast.parse(text)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            offenders += [
                f"{relative}: import {name}"
                for name in names
                if name == "modules" or name.startswith("modules.")
            ]
    assert offenders == []


def test_the_tests_reach_managers_through_get_app_manager() -> None:
    """The framework's tests use the managers as a module does: ``get_app_manager()`` (the
    ``app_manager`` fixture, ``manager_of(app)``), never ``app.extensions``, and no test reads
    a private attribute (``x._name`` on anything but ``self``/``cls``; the helpers of
    ``tests/support`` may, inside the classes they define)."""
    extensions = re.compile(r"\.extensions\s*(\[|\.get\()")
    offenders = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        if "node_modules" in path.parts:
            continue
        relative = path.relative_to(ROOT)
        text = path.read_text(encoding="utf-8")
        for number, line in enumerate(text.splitlines(), 1):
            if extensions.search(line) and "psycopg2.extensions" not in line:
                offenders.append(f"{relative}:{number}: app.extensions")
        for node in ast.walk(ast.parse(text)):
            if relative.parts[1] == "support":
                break
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                offenders.append(f"{relative}:{node.lineno}: {ast.unparse(node)}")
    assert offenders == []
