"""``flask module new NAME``: a working module and its tests, or a one-line refusal; and the
walk-through of docs/modules.md, whose files are applied on top of a scaffold and tested.

The full check works in a copy of the project: it scaffolds ``inventory`` (a migration, a
route, an action and a socket event) and ``shelf``, applies the guide's files to ``shelf``,
runs both modules' tests, then every framework test marked ``project_wide`` (those that read
project-wide state: migrations, OpenAPI, listings, settings, ``.env.example``) against that
copy: no framework test may depend on which modules a project has. A project that already has
a module of either name gets the next free one (``inventory2``...), so the check runs in any
project built on the framework."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from subprocess import PIPE

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


def free_name(base: str, root: Path = ROOT) -> str:
    """``base``, or ``base2``, ``base3``... : the first name no module or test folder has."""
    for suffix in ("", *map(str, range(2, 100))):
        name = base + suffix
        if not any((root / folder / name).exists() for folder in ("modules", "tests")):
            return name
    raise AssertionError(f"no free module name like {base!r}")


def renamed(text: str, name: str) -> str:
    """The guide's ``shelf`` text for a module called ``name`` (every spelling follows it)."""
    camel = "".join(part.capitalize() for part in name.split("_"))
    return text.replace("shelf", name).replace("Shelf", camel).replace("SHELF", name.upper())


#: A module this project has (refused as taken); the framework's own, whichever are enabled.
TAKEN = sorted(
    path.name
    for path in (ROOT / "modules").iterdir()
    if (path / "__init__.py").is_file() and not path.name.startswith("_")
)[0]


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


def test_a_project_with_modules_of_those_names_gets_the_next_free_ones(tmp_path: Path) -> None:
    (tmp_path / "modules" / "inventory").mkdir(parents=True)
    (tmp_path / "tests" / "inventory2").mkdir(parents=True)
    assert free_name("inventory", tmp_path) == "inventory3"
    assert free_name("shelf", tmp_path) == "shelf"
    guide = "# modules/shelf/settings.py\nclass ShelfSettings:  # SHELF_MAX_ITEMS, /shelf/items"
    assert renamed(guide, "my_shelf").splitlines() == [
        "# modules/my_shelf/settings.py",
        "class MyShelfSettings:  # MY_SHELF_MAX_ITEMS, /my_shelf/items",
    ]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (TAKEN, f"Error: module '{TAKEN}' already exists in "),
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


@pytest.mark.timeout(900)  # two inner pytest runs (~1 min on a quiet machine)
def test_scaffolded_modules_and_the_guide_pass_their_tests_and_the_frameworks(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    shutil.copytree(ROOT, project, ignore=_NOT_IN_A_CLONE)
    # The JS and TS clients' installed packages are the checkout's (same lock files): no
    # second npm install for the project-wide client tests.
    for installed in ROOT.glob("tests/clients/*/node_modules"):
        (project / installed.relative_to(ROOT)).symlink_to(installed, target_is_directory=True)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHON"))}

    def run(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        """``python -m ARGS`` in the copy. Past ``timeout`` it is interrupted (SIGINT), so an
        inner pytest stops the servers its fixtures started, then killed; the test fails."""
        command = [sys.executable, "-m", *args]
        with subprocess.Popen(
            command, cwd=project, env=environ, stdout=PIPE, stderr=PIPE, text=True
        ) as child:
            try:
                stdout, stderr = child.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                child.send_signal(signal.SIGINT)
                try:
                    stdout, stderr = child.communicate(timeout=60)
                except subprocess.TimeoutExpired:
                    child.kill()
                    stdout, stderr = child.communicate()
                pytest.fail(
                    f"{' '.join(args)} ran over {timeout} s:\n{stdout[-3000:]}{stderr[-2000:]}"
                )
        return subprocess.CompletedProcess(command, child.returncode, stdout, stderr)

    inventory, shelf = free_name("inventory"), free_name("shelf")
    made = run("flask", "--app", "app", "module", "new", inventory, timeout=60)
    assert made.returncode == 0, made.stdout + made.stderr
    assert f"created modules/{inventory}/routes.py" in made.stdout
    written = sorted(
        str(path.relative_to(project))
        for path in project.glob(f"*/{inventory}/**/*")
        if path.is_file()
    )
    assert written == [
        f"modules/{inventory}/__init__.py",
        f"modules/{inventory}/actions.yaml",
        f"modules/{inventory}/events.py",
        f"modules/{inventory}/handlers.py",
        f"modules/{inventory}/migrations/0001_{inventory}_archive.sql",
        f"modules/{inventory}/module.py",
        f"modules/{inventory}/routes.py",
        f"modules/{inventory}/settings.py",
        f"modules/{inventory}/store.py",
        f"tests/{inventory}/__init__.py",
        f"tests/{inventory}/test_{inventory}.py",
    ]
    scaffolded = "\n".join(
        path.read_text() for path in project.glob(f"*/{inventory}/**/*.*") if path.is_file()
    )
    assert "notes" not in scaffolded.lower()
    assert f"{inventory.upper()}_PAGE_SIZE=20" in (project / ".env.example").read_text()

    again = run("flask", "--app", "app", "module", "new", inventory, timeout=60)
    assert again.returncode == 1
    assert again.stderr.strip().splitlines() == [
        f"Error: module '{inventory}' already exists in {project / 'modules'}"
    ]

    made = run("flask", "--app", "app", "module", "new", shelf, timeout=60)
    assert made.returncode == 0, made.stdout + made.stderr
    for path, content in guide_files():
        with (project / renamed(path, shelf)).open("a" if path == ".env.example" else "w") as file:
            file.write(renamed(content, shelf))

    modules_tests = run("pytest", f"tests/{inventory}", f"tests/{shelf}", "-q", timeout=240)
    assert modules_tests.returncode == 0, (
        modules_tests.stdout[-3000:] + modules_tests.stderr[-2000:]
    )
    assert " passed" in modules_tests.stdout

    # Every framework test that reads project-wide state, now with two more modules.
    framework = run("pytest", "tests", "-m", "project_wide", "-q", timeout=480)
    assert framework.returncode == 0, framework.stdout[-3000:] + framework.stderr[-2000:]
    assert " passed" in framework.stdout
