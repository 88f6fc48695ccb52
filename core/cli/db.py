"""``flask db upgrade`` and ``flask db status``: the versioned PostgreSQL migrations of the
framework and of every enabled module."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click
from flask.cli import AppGroup

from core.app_manager import get_app_manager
from core.errors import FrameworkError
from core.managers.database.json import to_json_compatible

db_cli = AppGroup("db", help="PostgreSQL schema migrations.")
COMMANDS = [db_cli]

F = TypeVar("F", bound=Callable[..., Any])


def _clean_errors(command: F) -> F:
    """Framework errors (unreachable store, changed migration) as one line and exit code 1."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except FrameworkError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper  # type: ignore[return-value]


@db_cli.command("upgrade")
@_clean_errors
def upgrade() -> None:
    """Apply pending migrations and print each one applied."""
    applied = get_app_manager().database.migrator.upgrade()
    for migration in applied:
        click.echo(f"applied {migration.label}")
    if not applied:
        click.echo("nothing to apply: the schema is up to date")


@db_cli.command("status")
@_clean_errors
def status() -> None:
    """List every migration per source (core, then each module): applied (with its time),
    pending, changed or missing."""
    lines = get_app_manager().database.migrator.status()
    if not lines:
        click.echo("no migrations")
    width = max((len(line.module) for line in lines), default=0)
    for line in lines:
        when = to_json_compatible(line.applied_at) if line.applied_at else ""
        label = f"{line.version}_{line.name}"
        click.echo(f"{line.module:<{width}}  {label:<37}  {line.state:<8}  {when}".rstrip())
