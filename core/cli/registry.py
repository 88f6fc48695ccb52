"""Registers the Flask CLI groups: every module of :mod:`core.cli` lists its click groups in
``COMMANDS``; :func:`register_commands` adds them to an app."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from flask import Flask

PACKAGE = __name__.rpartition(".")[0]


def register_commands(app: Flask) -> None:
    for info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda i: i.name):
        module = importlib.import_module(f"{PACKAGE}.{info.name}")
        for group in getattr(module, "COMMANDS", ()):
            app.cli.add_command(group)
