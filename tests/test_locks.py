"""Hash-locked installs: the locks follow the requirement files, pin everything, hash everything,
and every install path (Makefile, CI, image) goes through them with --require-hashes."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from core.devstack.locks import INPUTS, LOCKS, inputs_digest, pins, recorded_digest

ROOT = Path(__file__).resolve().parent.parent


def _requirements(source: Path) -> dict[str, set[str]]:
    """Pins of a requirement file and the files it includes with -r."""
    found = pins(source)
    for line in source.read_text().splitlines():
        if line.startswith("-r "):
            found |= _requirements(source.parent / line.split(maxsplit=1)[1])
    return found


def _blocks(lock: Path) -> dict[str, str]:
    """First line of each pinned requirement -> the whole requirement (continuations joined)."""
    blocks: dict[str, str] = {}
    current: list[str] = []
    for line in lock.read_text().splitlines():
        if current:
            current.append(line)
        elif re.match(r"^[A-Za-z0-9]", line):
            current = [line]
        if current and not line.rstrip().endswith("\\"):
            blocks[current[0]] = " ".join(current)
            current = []
    return blocks


@pytest.mark.parametrize(("source", "lock"), LOCKS)
def test_the_lock_was_made_from_the_current_requirement_files(source: str, lock: str) -> None:
    recorded = recorded_digest(ROOT / lock)
    assert recorded == inputs_digest(ROOT), (
        f"{source} changed since {lock} was made: run `make lock` and commit the locks"
    )


def test_editing_a_requirement_file_makes_the_locks_stale(tmp_path: Path) -> None:
    for name in INPUTS:
        shutil.copy(ROOT / name, tmp_path / name)
    before = inputs_digest(tmp_path)
    with open(tmp_path / "requirements-dev.txt", "a") as handle:
        handle.write("import-linter==2.5\n")
    assert inputs_digest(tmp_path) != before


@pytest.mark.parametrize(("source", "lock"), LOCKS)
def test_every_requirement_is_pinned_at_the_same_version_in_its_lock(
    source: str, lock: str
) -> None:
    wanted = _requirements(ROOT / source)
    locked = pins(ROOT / lock)
    assert wanted, source
    mismatched = {name: (versions, locked.get(name)) for name, versions in wanted.items()}
    assert {k: v for k, v in mismatched.items() if v[1] != v[0]} == {}


@pytest.mark.parametrize("lock", [lock for _, lock in LOCKS])
def test_every_locked_package_is_pinned_and_hashed(lock: str) -> None:
    blocks = _blocks(ROOT / lock)
    assert len(blocks) > 20
    for first, block in blocks.items():
        assert re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*==\S+", first), first
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", block), first


def test_the_image_runs_the_versions_the_tests_ran() -> None:
    runtime, dev = pins(ROOT / "requirements.lock"), pins(ROOT / "requirements-dev.lock")
    assert {name: versions for name, versions in runtime.items() if dev.get(name) != versions} == {}


def test_every_install_path_uses_a_lock_with_require_hashes() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"\$\(PIP\) install --require-hashes -r requirements-dev\.lock", makefile)
    assert not re.search(r"install[^\n]* -r requirements(-dev)?\.txt", makefile)
    dockerfile = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    install = r"pip install [^\n]*--require-hashes[^\n]*-r /tmp/requirements\.lock"
    assert re.search(install, dockerfile)
    assert "requirements.txt" not in dockerfile
    # CI installs through make (venv), never with a pip line of its own.
    assert not re.search(r"pip[^\n]* install", (ROOT / ".ci" / "run").read_text())
