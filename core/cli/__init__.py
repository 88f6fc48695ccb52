"""Flask CLI commands (``flask --app app <group> <command>``), one file per group."""

from __future__ import annotations

from flask import Flask

from core.cli.config import config_cli


def register_commands(app: Flask) -> None:
    app.cli.add_command(config_cli)
