"""Write throw-away module packages for discovery tests."""

from __future__ import annotations

import sys
import textwrap
import uuid
from pathlib import Path

import pytest


def module_source(dependencies: tuple[str, ...] = (), body: str = "") -> str:
    """Source of a package defining one BaseModule subclass; ``body`` adds class members."""
    members = textwrap.indent(textwrap.dedent(body).strip(), "    ")
    return (
        "from core.module import BaseModule\n\n\n"
        "class Module(BaseModule):\n"
        f"    dependencies = {dependencies!r}\n"
        f"{members}\n"
    )


def make_modules_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, modules: dict[str, str]
) -> str:
    """Create package ``mods_<uid>`` with one sub-package per entry; returns its name."""
    name = f"mods_{uuid.uuid4().hex[:10]}"
    root = tmp_path / name
    root.mkdir()
    (root / "__init__.py").write_text("")
    for module_name, source in modules.items():
        (root / module_name).mkdir()
        (root / module_name / "__init__.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    return name
