"""``flask ratelimit bans`` and ``flask ratelimit unban LEVEL ID``."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from core.app_manager import get_app_manager
from core.managers.rate_limiter import LEVELS

ratelimit_cli = AppGroup("ratelimit", help="Inspect and lift rate-limit bans.")
COMMANDS = [ratelimit_cli]


@ratelimit_cli.command("bans")
def bans() -> None:
    """List active bans: level, identifier, offences, seconds left."""
    found = get_app_manager().rate_limiter.bans()
    if not found:
        click.echo("no active bans")
    for ban in found:
        click.echo(
            f"{ban['level']:<8} {ban['identifier']}  offenses={ban['offenses']}"
            f"  seconds_left={ban['seconds_left']}"
        )


@ratelimit_cli.command("unban")
@click.argument("level", type=click.Choice(LEVELS))
@click.argument("identifier")
def unban(level: str, identifier: str) -> None:
    """Lift the ban of IDENTIFIER at LEVEL, on every instance at once."""
    if not get_app_manager().rate_limiter.unban(level, identifier):
        raise click.ClickException(f"no ban for {level} {identifier}")
    security = get_app_manager().security
    security.record("ratelimit.unban", principal_type="cli", level=level, identifier=identifier)
    security.flush()
    click.echo(f"unbanned {level} {identifier}")
