"""``flask config show``: every setting, its value (secrets masked) and where it came from."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from config.settings import Settings

config_cli = AppGroup("config", help="Inspect the resolved settings.")
COMMANDS = [config_cli]


@config_cli.command("show")
def show() -> None:
    """Print every setting with its source; secret values are masked."""
    loaded = current_app.extensions["app_manager"].loaded
    settings: Settings = loaded.settings
    rows = [
        (name.upper(), settings.display_value(name), loaded.source_of(name))
        for name in Settings.model_fields
    ]
    width = max(len(row[0]) for row in rows)
    for env_name, value, source in rows:
        click.echo(f"{env_name:<{width}}  {source:<11}  {value}")
