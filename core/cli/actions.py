"""``flask actions list`` and ``flask actions check``: the declared actions, for operators."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from core.app_manager import get_app_manager

actions_cli = AppGroup("actions", help="YAML-declared actions.")
COMMANDS = [actions_cli]


@actions_cli.command("list")
def list_command() -> None:
    """Every action: name, auth, roles, scopes, rate limit, audit, handler and source."""
    for action in get_app_manager().actions.all():
        needs = [f"{name}={value}" for name, value in action.requirements()]
        if not action.audit:
            needs.append("audit=off")
        click.echo(f"{action.name}  {' '.join(needs)}  {action.handler_ref}  ({action.source})")


@actions_cli.command("check")
def check_command() -> None:
    """Check the declarations as they are on disk now; exit 1 listing every problem."""
    manager = get_app_manager().actions
    actions, problems = manager.check()
    for problem in problems:
        click.echo(str(problem), err=True)
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s) in the action declarations")
    files = len(manager.declaration_files())
    click.echo(f"ok: {len(actions)} actions, {files} declaration files")
