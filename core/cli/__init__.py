"""Flask CLI commands (``flask --app app <group> <command>``), one file per group.

Every module in this package lists its click groups in ``COMMANDS``; they are registered on
each app. Feature modules add theirs the same way from their own package.
"""

from __future__ import annotations

import importlib
import pkgutil

from flask import Flask


def register_commands(app: Flask) -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for group in getattr(module, "COMMANDS", ()):
            app.cli.add_command(group)
