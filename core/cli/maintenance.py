"""``flask maintenance on --message ...`` / ``off`` / ``status``: maintenance mode, on every
instance at once (the change is announced over Redis pub/sub)."""

from __future__ import annotations

from collections.abc import Callable

import click
from flask.cli import AppGroup

from core.app_manager import get_app_manager
from core.errors import ApiError
from core.managers.state import StateManager, maintenance
from core.managers.state.maintenance import MaintenanceStatus

maintenance_cli = AppGroup("maintenance", help="Switch maintenance mode on every instance.")
COMMANDS = [maintenance_cli]


@maintenance_cli.command("on")
@click.option("--message", "-m", default=None, help="The detail of the 503 answers.")
def on(message: str | None) -> None:
    """Answer 503 MAINTENANCE to every request except health, metrics and admin routes."""
    _run(lambda state: maintenance.set_mode(state, True, message), "maintenance.on")


@maintenance_cli.command("off")
def off() -> None:
    """Serve requests again."""
    _run(lambda state: maintenance.set_mode(state, False), "maintenance.off")


@maintenance_cli.command("status")
def status() -> None:
    """Print whether maintenance mode is on, with its message."""
    _run(maintenance.status)


def _run(action: Callable[[StateManager], MaintenanceStatus], event: str = "") -> None:
    """Run ``action``; a switch (``event``) is recorded as a security event."""
    state: StateManager = get_app_manager().state
    try:
        result = action(state)
    except ApiError as exc:  # DependencyUnavailable, StateConflict: say it, exit 1
        raise click.ClickException(exc.detail) from exc
    if event:
        security = get_app_manager().security
        security.record(event, principal_type="cli")
        security.flush()
    mode = f"on: {result.message}" if result.enabled else "off"
    since = result.updated_at or "never changed"
    click.echo(f"maintenance {mode} (version {result.version}, {since})")
