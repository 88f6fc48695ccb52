"""API keys for service-to-service calls (docs/auth.md, "API keys"): admin routes, whoami and CLI.

Keys are managed by the ApiKeyManager (``app_manager.api_keys``); this module is its HTTP and
CLI surface.
"""

from __future__ import annotations

from typing import Any

import click
from flask import Blueprint
from flask.cli import AppGroup

from core.app_manager import get_app_manager
from core.errors import ApiError
from core.http.auth import current_principal, require_roles
from core.http.typed import Paged, PageQuery, typed
from core.module import BaseModule
from modules.api_keys.schemas import ApiKey, Caller, CreatedKey, NewKey

bp = Blueprint("api_keys", __name__)
api_keys_cli = AppGroup("api-keys", help="Manage API keys for service-to-service calls.")


@bp.post("/userauth/api-keys")
@require_roles("admin")
@typed(body=NewKey, response=CreatedKey, status=201)
def create_key(body: NewKey) -> dict[str, Any]:
    """Create a key; the answer is the only place its secret appears."""
    manager = get_app_manager()
    created = manager.api_keys.create(
        body.name, body.scopes, body.expires_in_days, created_by=f"user:{current_principal().id}"
    )
    manager.security.record("api_key.created", key_id=created["id"], key_prefix=created["prefix"])
    return created


@bp.get("/userauth/api-keys")
@require_roles("admin")
@typed(query=PageQuery, response=Paged[ApiKey])
def list_keys(query: PageQuery) -> dict[str, Any]:
    """The active keys, oldest first, a page at a time."""
    return get_app_manager().api_keys.page(query.limit, query.cursor).to_dict()


@bp.delete("/userauth/api-keys/<key_id>")
@require_roles("admin")
@typed(errors={404: ["NOT_FOUND"]})
def revoke_key(key_id: str) -> None:
    """Revoke a key: it stops working at once on every instance."""
    manager = get_app_manager()
    manager.api_keys.revoke(key_id)
    manager.security.record("api_key.revoked", key_id=key_id)


@bp.get("/keyauth/whoami")
@typed(response=Caller)
def whoami() -> Caller:
    """The API key making the call."""
    principal = current_principal()
    return Caller(key_id=principal.id, name=principal.name, scopes=sorted(principal.scopes))


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


class ApiKeysModule(BaseModule):
    blueprint = bp
    commands = (api_keys_cli,)
