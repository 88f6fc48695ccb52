"""``flask config show``: every setting (core, then each module's), its value (secrets masked)
and where it came from."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from config.loader import LoadedSettings
from core.app_manager import get_app_manager

config_cli = AppGroup("config", help="Inspect the resolved settings.")
COMMANDS = [config_cli]


@config_cli.command("show")
def show() -> None:
    """Print every setting with its source; secret values are masked."""
    loaded: LoadedSettings = get_app_manager().loaded
    rows = [
        (setting, model.display_value(name), source)
        for setting, model, name, source in loaded.entries()
    ]
    width = max(len(row[0]) for row in rows)
    for env_name, value, source in rows:
        click.echo(f"{env_name:<{width}}  {source:<11}  {value}")
