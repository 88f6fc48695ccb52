"""API keys for service-to-service calls (docs/auth.md, "API keys"): admin routes, whoami and CLI.

Keys are managed by the ApiKeyManager (``app_manager.api_keys``); this module is its HTTP and
CLI surface.
"""

from __future__ import annotations

import click
from flask import Blueprint, Response, jsonify
from flask.cli import AppGroup
from flask.typing import ResponseReturnValue

from core.app_manager import get_app_manager
from core.errors import ApiError
from core.http.auth import current_principal, require_roles
from core.http.pipeline import json_body
from core.managers.api_keys import validate_new_key
from core.module import BaseModule

bp = Blueprint("api_keys", __name__)
api_keys_cli = AppGroup("api-keys", help="Manage API keys for service-to-service calls.")


@bp.post("/userauth/api-keys")
@require_roles("admin")
def create_key() -> ResponseReturnValue:
    body = json_body()
    name, scopes, expires_in_days = validate_new_key(
        body.get("name"), body.get("scopes"), body.get("expires_in_days")
    )
    created = get_app_manager().api_keys.create(
        name, scopes, expires_in_days, created_by=f"user:{current_principal().id}"
    )
    return jsonify(created), 201


@bp.get("/userauth/api-keys")
@require_roles("admin")
def list_keys() -> ResponseReturnValue:
    return jsonify(items=get_app_manager().api_keys.list())


@bp.delete("/userauth/api-keys/<key_id>")
@require_roles("admin")
def revoke_key(key_id: str) -> ResponseReturnValue:
    get_app_manager().api_keys.revoke(key_id)
    return Response(status=204)


@bp.get("/keyauth/whoami")
def whoami() -> ResponseReturnValue:
    principal = current_principal()
    return jsonify(key_id=principal.id, name=principal.name, scopes=sorted(principal.scopes))


@api_keys_cli.command("create")
@click.option("--name", required=True)
@click.option("--scope", "scopes", multiple=True, help="Repeat for several scopes.")
@click.option("--expires-in-days", type=int, default=None)
def create_command(name: str, scopes: tuple[str, ...], expires_in_days: int | None) -> None:
    """Create a key and print it once."""
    manager = get_app_manager()
    manager.database.mongo.ensure_indexes()
    try:
        created = manager.api_keys.create(name, list(scopes), expires_in_days, created_by="cli")
    except ApiError as exc:
        raise click.ClickException(exc.summary()) from None
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
    try:
        get_app_manager().api_keys.revoke(key_id)
    except ApiError as exc:
        raise click.ClickException(exc.summary()) from None
    click.echo(f"revoked {key_id}")


class ApiKeysModule(BaseModule):
    blueprint = bp
    commands = (api_keys_cli,)
