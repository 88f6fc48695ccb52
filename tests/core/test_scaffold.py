"""``flask module new NAME``: a working module and its tests, or a one-line refusal; and the
walk-through of docs/modules.md, whose files are applied on top of a scaffold and tested.

The full check works in a copy of the project: it scaffolds ``inventory`` and ``shelf``,
applies the guide's files to ``shelf`` and runs both modules' tests together with the
framework tests that must not care which modules a project has."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.testing import AppFactory

ROOT = Path(__file__).resolve().parents[2]
#: What a fresh clone does not have (caches, venvs, local data).
_NOT_IN_A_CLONE = shutil.ignore_patterns(
    ".git",
    ".venv*",
    "__pycache__",
    ".devdata",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    "node_modules",
    "test-artifacts",
    "results",
)


GUIDE = ROOT / "docs" / "modules.md"
_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
_FILE_HEADER = re.compile(r"(?:#|--) ((?:modules|tests)/shelf/[\w/.]+|\.env\.example)\n")


def guide_blocks() -> list[tuple[str, str]]:
    """``(language, code)`` of every fenced block of the guide."""
    return [(match[1], match[2]) for match in _BLOCK.finditer(GUIDE.read_text())]


def guide_files() -> list[tuple[str, str]]:
    """``(path, content)`` of the guide's blocks that are files, in order."""
    files = []
    for _, code in guide_blocks():
        header = _FILE_HEADER.match(code)
        if header:
            files.append((header[1], code))
    return files


def test_every_python_example_of_the_guide_compiles_and_the_files_are_found() -> None:
    blocks = [code for language, code in guide_blocks() if language == "python"]
    assert len(blocks) >= 8
    for code in blocks:
        compile(code, str(GUIDE), "exec")
    paths = [path for path, _ in guide_files()]
    assert {
        "modules/shelf/module.py",
        "modules/shelf/settings.py",
        "modules/shelf/actions.yaml",
        "modules/shelf/handlers.py",
        "tests/shelf/test_walkthrough.py",
        ".env.example",
    } <= set(paths)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("notes", "Error: module 'notes' already exists in "),
        ("Bad-Name", "Error: 'Bad-Name' is not a module name: use 2-20 characters"),
        ("x", "Error: 'x' is not a module name"),
        ("two__bars", "Error: 'two__bars' is not a module name"),
        ("class", "Error: 'class' is not a module name"),
        ("core", "Error: 'core' is reserved; choose another name"),
    ],
)
def test_a_bad_or_taken_name_is_refused_in_one_line_and_nothing_is_written(
    make_app: AppFactory, name: str, message: str
) -> None:
    before = sorted(path.name for path in (ROOT / "modules").iterdir())
    env_example = (ROOT / ".env.example").read_text()
    result = make_app(start=False).test_cli_runner().invoke(args=["module", "new", name])
    assert result.exit_code == 1
    assert result.output.startswith(message)
    assert len(result.output.strip().splitlines()) == 1
    assert sorted(path.name for path in (ROOT / "modules").iterdir()) == before
    assert (ROOT / ".env.example").read_text() == env_example


def test_scaffolded_modules_and_the_guide_pass_their_tests_and_the_frameworks(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    shutil.copytree(ROOT, project, ignore=_NOT_IN_A_CLONE)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHON"))}

    def run(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", *args],
            cwd=project,
            env=environ,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    made = run("flask", "--app", "app", "module", "new", "inventory", timeout=60)
    assert made.returncode == 0, made.stdout + made.stderr
    assert "created modules/inventory/routes.py" in made.stdout
    written = sorted(
        str(path.relative_to(project))
        for path in project.glob("*/inventory/**/*")
        if path.is_file()
    )
    assert written == [
        "modules/inventory/__init__.py",
        "modules/inventory/actions.yaml",
        "modules/inventory/handlers.py",
        "modules/inventory/migrations/0001_inventory_archive.sql",
        "modules/inventory/module.py",
        "modules/inventory/routes.py",
        "modules/inventory/settings.py",
        "modules/inventory/store.py",
        "tests/inventory/__init__.py",
        "tests/inventory/test_inventory.py",
    ]
    scaffolded = "\n".join(
        path.read_text() for path in project.glob("*/inventory/**/*.*") if path.is_file()
    )
    assert "notes" not in scaffolded.lower()
    assert "INVENTORY_PAGE_SIZE=20" in (project / ".env.example").read_text()

    again = run("flask", "--app", "app", "module", "new", "inventory", timeout=60)
    assert again.returncode == 1
    assert again.stderr.strip().splitlines() == [
        f"Error: module 'inventory' already exists in {project / 'modules'}"
    ]

    shelf = run("flask", "--app", "app", "module", "new", "shelf", timeout=60)
    assert shelf.returncode == 0, shelf.stdout + shelf.stderr
    for path, content in guide_files():
        with (project / path).open("a" if path == ".env.example" else "w") as file:
            file.write(content)

    tested = run(
        "pytest",
        "tests/inventory",
        "tests/shelf",
        "tests/config/test_documentation.py",
        "tests/actions/test_listing.py",
        "-q",
        timeout=300,
    )
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-2000:]
    assert " passed" in tested.stdout
    assert " failed" not in tested.stdout
