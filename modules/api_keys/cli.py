"""``flask --app app api-keys create|list|revoke``: keys made, listed and revoked without HTTP
(the way to make the first key, and the only one when no module issues admin tokens)."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from core.app_manager import get_app_manager
from core.edge.validation import load_model
from core.errors import ApiError
from modules.api_keys.schemas import NewKey

api_keys_cli = AppGroup("api-keys", help="Manage API keys for service-to-service calls.")


@api_keys_cli.command("create")
@click.option("--name", required=True)
@click.option("--scope", "scopes", multiple=True, help="Repeat for several scopes.")
@click.option("--expires-in-days", type=int, default=None)
def create_command(name: str, scopes: tuple[str, ...], expires_in_days: int | None) -> None:
    """Create a key and print it once."""
    manager = get_app_manager()
    manager.database.mongo.ensure_indexes()
    try:
        new = load_model(
            NewKey, {"name": name, "scopes": list(scopes), "expires_in_days": expires_in_days}
        )
        created = manager.api_keys.create(
            new.name, new.scopes, new.expires_in_days, created_by="cli"
        )
    except ApiError as exc:
        raise click.ClickException(exc.summary()) from None
    manager.security.record(
        "api_key.created", principal_type="cli", key_id=created["id"], key_prefix=created["prefix"]
    )
    manager.security.flush()
    click.echo(
        f"id={created['id']} prefix={created['prefix']} scopes={','.join(created['scopes'])}"
    )
    click.echo(created["key"])
    click.echo("Store the key now: it is not shown again.", err=True)


@api_keys_cli.command("list")
def list_command() -> None:
    """List active keys (never the secret)."""
    for item in get_app_manager().api_keys.list():
        click.echo(
            f"{item['id']}  {item['prefix']}  {item['name']}  scopes={','.join(item['scopes'])}"
            f"  expires={item['expires_at'] or '-'}  last_used={item['last_used_at'] or '-'}"
        )


@api_keys_cli.command("revoke")
@click.argument("key_id")
def revoke_command(key_id: str) -> None:
    """Revoke a key; it stops working at once on every instance."""
    manager = get_app_manager()
    try:
        manager.api_keys.revoke(key_id)
    except ApiError as exc:
        raise click.ClickException(exc.summary()) from None
    manager.security.record("api_key.revoked", principal_type="cli", key_id=key_id)
    manager.security.flush()
    click.echo(f"revoked {key_id}")
