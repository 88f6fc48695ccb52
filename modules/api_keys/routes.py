"""HTTP routes of the api_keys module: create, list and revoke keys (role ``admin``) and
``/keyauth/whoami`` (docs/auth.md, "API keys")."""

from __future__ import annotations

from typing import Any

from core.app_manager import get_app_manager
from core.http.auth import current_principal
from core.http.routes import Routes
from core.http.typed import Paged, PageQuery
from modules.api_keys.schemas import ApiKey, Caller, CreatedKey, NewKey

bp = Routes("api_keys", __name__)


@bp.post(
    "/userauth/api-keys",
    roles=["admin"],
    body=NewKey,
    response=CreatedKey,
    status=201,
    idempotent=True,
)
def create_key(body: NewKey) -> dict[str, Any]:
    """Create a key; the answer is the only place its secret appears."""
    manager = get_app_manager()
    created = manager.api_keys.create(
        body.name, body.scopes, body.expires_in_days, created_by=f"user:{current_principal().id}"
    )
    manager.security.record("api_key.created", key_id=created["id"], key_prefix=created["prefix"])
    return created


@bp.get("/userauth/api-keys", roles=["admin"], query=PageQuery, response=Paged[ApiKey])
def list_keys(query: PageQuery) -> dict[str, Any]:
    """The active keys, oldest first, a page at a time."""
    return get_app_manager().api_keys.page(query.limit, query.cursor).to_dict()


@bp.delete("/userauth/api-keys/<key_id>", roles=["admin"], errors={"NOT_FOUND": 404})
def revoke_key(key_id: str) -> None:
    """Revoke a key: it stops working at once on every instance."""
    manager = get_app_manager()
    manager.api_keys.revoke(key_id)
    manager.security.record("api_key.revoked", key_id=key_id)


@bp.get("/keyauth/whoami", response=Caller)
def whoami() -> Caller:
    """The API key making the call."""
    principal = current_principal()
    return Caller(key_id=principal.id, name=principal.name, scopes=sorted(principal.scopes))
