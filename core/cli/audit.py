"""``flask audit tail [-n N] [--kind KIND]``: the most recent rows of the audit log, oldest
first; ``--kind security`` shows only security events, with their details."""

from __future__ import annotations

import json

import click
from flask.cli import AppGroup

from core.app_manager import get_app_manager
from core.errors import FrameworkError
from core.managers.database import DatabaseManager
from core.managers.database.json import to_json_compatible

audit_cli = AppGroup("audit", help="The audit log (PostgreSQL audit_log).")
COMMANDS = [audit_cli]

_TAIL = (
    "SELECT id, occurred_at, kind, action, principal_type, principal_id, outcome, status,"
    " duration_ms, request_id, details FROM audit_log WHERE %s IS NULL OR kind = %s"
    " ORDER BY id DESC LIMIT %s"
)


@audit_cli.command("tail")
@click.option("-n", "--lines", "count", type=click.IntRange(1, 10_000), default=20)
@click.option("--kind", default=None, help="Only rows of this kind (action, security).")
def tail(count: int, kind: str | None) -> None:
    """Print the last N rows: time, kind, action, principal, outcome, status, duration, request
    (and, for security events, their details)."""
    database: DatabaseManager = get_app_manager().database
    try:
        rows = database.postgres.execute(_TAIL, (kind, kind, count))
    except FrameworkError as exc:
        raise click.ClickException(str(exc)) from exc
    for row in reversed(rows):
        who = (
            f"{row['principal_type']}:{row['principal_id'] or '-'}"
            if row["principal_type"]
            else "-"
        )
        took = f"{row['duration_ms']:.1f}ms" if row["duration_ms"] is not None else "-"
        details = (
            f"  {json.dumps(row['details'], sort_keys=True)}" if row["kind"] == "security" else ""
        )
        click.echo(
            f"{to_json_compatible(row['occurred_at'])}  {row['kind']}  {row['action']}  {who}"
            f"  {row['outcome']}  {row['status'] or '-'}  {took}  {row['request_id'] or '-'}"
            + details
        )
