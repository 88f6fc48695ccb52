"""Role and scope checks as a module declares them (``roles=``, ``scopes=`` on the route) and a
route declared ``jwt_or_api_key``, served by a throw-away module next to the real ones."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.testing import AppFactory, bearer, problem
from modules.api_keys.testing import create_api_key
from modules.auth.testing import set_roles
from tests.support.packages import make_modules_package

GUARDED = textwrap.dedent(
    """
    from flask import jsonify

    from core.http.auth import JWT_OR_API_KEY, current_principal
    from core.http.routes import Routes
    from core.module import BaseModule

    bp = Routes("guarded", __name__)
    JSON = "application/json"


    def caller():
        principal = current_principal()
        return jsonify(
            type=principal.type,
            id=principal.id,
            roles=sorted(principal.roles),
            scopes=sorted(principal.scopes),
        )


    @bp.get("/keyauth/guarded/notes", scopes=["notes:read"], media_type=JSON)
    def read_notes():
        return caller()


    @bp.post("/keyauth/guarded/notes", scopes=["notes:read", "notes:write"], media_type=JSON)
    def write_notes():
        return caller()


    @bp.get("/guarded/either", auth=JWT_OR_API_KEY, media_type=JSON)
    def either():
        return caller()


    @bp.get("/guarded/either/notes", auth=JWT_OR_API_KEY, scopes=["notes:read"], media_type=JSON)
    def either_notes():
        return caller()


    @bp.get("/userauth/guarded/reports", roles=["admin"], media_type=JSON)
    def reports():
        return caller()


    @bp.get("/userauth/guarded/audit", roles=["admin", "auditor"], media_type=JSON)
    def audit():
        return caller()


    class Guarded(BaseModule):
        blueprint = bp
    """
)


@pytest.fixture
def app(make_app: AppFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Flask:
    package = make_modules_package(tmp_path, monkeypatch, {"guarded": GUARDED})
    return make_app({"MODULES_PACKAGES": f"modules,tests.support.modules,{package}"})


def key_with(client: FlaskClient, admin: dict[str, Any], scopes: list[str]) -> dict[str, Any]:
    return create_api_key(client, admin["access_token"], scopes)


def api_key(created: dict[str, Any]) -> dict[str, str]:
    return {"X-API-Key": created["key"]}


# -- scopes ---------------------------------------------------------------------------------------


def test_a_key_with_the_scope_reaches_a_scoped_route(
    client: FlaskClient, admin: dict[str, Any]
) -> None:
    created = key_with(client, admin, ["notes:read"])
    response = client.get("/keyauth/guarded/notes", headers=api_key(created))
    assert response.status_code == 200
    assert response.get_json() == {
        "type": "api_key",
        "id": created["id"],
        "roles": [],
        "scopes": ["notes:read"],
    }


def test_a_key_without_the_scope_is_403_insufficient_scope(
    client: FlaskClient, admin: dict[str, Any]
) -> None:
    for scopes in ([], ["notes:write"], ["notes"], ["notes:read:all"], ["billing:read"]):
        created = key_with(client, admin, scopes)
        response = client.get("/keyauth/guarded/notes", headers=api_key(created))
        problem(response, 403, "INSUFFICIENT_SCOPE")


def test_a_route_needing_two_scopes_needs_both(client: FlaskClient, admin: dict[str, Any]) -> None:
    read_only = key_with(client, admin, ["notes:read"])
    problem(
        client.post("/keyauth/guarded/notes", headers=api_key(read_only)), 403, "INSUFFICIENT_SCOPE"
    )
    both = key_with(client, admin, ["notes:read", "notes:write", "billing:read"])
    response = client.post("/keyauth/guarded/notes", headers=api_key(both))
    assert response.status_code == 200
    assert response.get_json()["scopes"] == ["billing:read", "notes:read", "notes:write"]


def test_scope_checks_come_after_authentication(client: FlaskClient) -> None:
    problem(client.get("/keyauth/guarded/notes"), 401, "API_KEY_REQUIRED")
    problem(
        client.get("/keyauth/guarded/notes", headers={"X-API-Key": "pbk_nope.nope"}),
        401,
        "API_KEY_INVALID",
    )


def test_a_user_token_does_not_reach_a_keyauth_route(
    client: FlaskClient, admin: dict[str, Any]
) -> None:
    response = client.get("/keyauth/guarded/notes", headers=bearer(admin["access_token"]))
    problem(response, 401, "API_KEY_REQUIRED")


# -- roles ----------------------------------------------------------------------------------------


def test_an_admin_reaches_an_admin_route(client: FlaskClient, admin: dict[str, Any]) -> None:
    response = client.get("/userauth/guarded/reports", headers=bearer(admin["access_token"]))
    assert response.status_code == 200
    assert response.get_json() == {
        "type": "user",
        "id": admin["user"]["id"],
        "roles": ["admin", "user"],
        "scopes": [],
    }


def test_a_user_without_the_role_is_403_forbidden(
    client: FlaskClient, user: dict[str, Any]
) -> None:
    problem(
        client.get("/userauth/guarded/reports", headers=bearer(user["access_token"])),
        403,
        "FORBIDDEN",
    )


def test_a_route_needing_two_roles_needs_both(
    app: Flask, client: FlaskClient, admin: dict[str, Any]
) -> None:
    problem(
        client.get("/userauth/guarded/audit", headers=bearer(admin["access_token"])),
        403,
        "FORBIDDEN",
    )
    set_roles(app, admin["user"]["email"], ["admin", "auditor"])
    # Roles travel in the access token: the new roles count from the next login.
    fresh = client.post(
        "/public/login", json={"email": admin["user"]["email"], "password": "correct-horse-battery"}
    ).get_json()
    response = client.get("/userauth/guarded/audit", headers=bearer(fresh["access_token"]))
    assert response.status_code == 200
    assert response.get_json()["roles"] == ["admin", "auditor"]


def test_role_routes_refuse_missing_credentials_and_api_keys_with_401(
    client: FlaskClient, admin: dict[str, Any]
) -> None:
    created = key_with(client, admin, ["notes:read", "admin"])
    problem(client.get("/userauth/guarded/reports"), 401, "AUTH_REQUIRED")
    problem(client.get("/userauth/guarded/reports", headers=api_key(created)), 401, "AUTH_REQUIRED")


# -- jwt_or_api_key -------------------------------------------------------------------------------


def test_jwt_or_api_key_accepts_a_user_token(client: FlaskClient, user: dict[str, Any]) -> None:
    response = client.get("/guarded/either", headers=bearer(user["access_token"]))
    assert response.status_code == 200
    assert response.get_json() == {
        "type": "user",
        "id": user["user"]["id"],
        "roles": ["user"],
        "scopes": [],
    }


def test_jwt_or_api_key_accepts_an_api_key(client: FlaskClient, admin: dict[str, Any]) -> None:
    created = key_with(client, admin, ["notes:read"])
    response = client.get("/guarded/either", headers=api_key(created))
    assert response.status_code == 200
    assert response.get_json() == {
        "type": "api_key",
        "id": created["id"],
        "roles": [],
        "scopes": ["notes:read"],
    }


def test_jwt_or_api_key_without_credentials_is_401_auth_required(client: FlaskClient) -> None:
    problem(client.get("/guarded/either"), 401, "AUTH_REQUIRED")
    problem(client.get("/guarded/either/notes"), 401, "AUTH_REQUIRED")


def test_jwt_or_api_key_refuses_bad_credentials_with_their_own_code(
    client: FlaskClient, admin: dict[str, Any]
) -> None:
    created = key_with(client, admin, ["notes:read"])
    revoked = key_with(client, admin, ["notes:read"])
    assert (
        client.delete(
            f"/userauth/api-keys/{revoked['id']}", headers=bearer(admin["access_token"])
        ).status_code
        == 204
    )

    problem(client.get("/guarded/either", headers=bearer("not-a-jwt")), 401, "TOKEN_INVALID")
    problem(client.get("/guarded/either", headers=api_key(revoked)), 401, "API_KEY_INVALID")
    problem(
        client.get("/guarded/either", headers={"X-API-Key": created["prefix"] + ".wrong"}),
        401,
        "API_KEY_INVALID",
    )
    # A refresh token is not an access token, whichever route it is sent to.
    problem(
        client.get("/guarded/either", headers=bearer(admin["refresh_token"])), 401, "TOKEN_INVALID"
    )


def test_a_bad_bearer_token_is_not_rescued_by_a_valid_api_key(
    client: FlaskClient, admin: dict[str, Any]
) -> None:
    created = key_with(client, admin, ["notes:read"])
    headers = {**bearer("not-a-jwt"), **api_key(created)}
    problem(client.get("/guarded/either", headers=headers), 401, "TOKEN_INVALID")


def test_require_scopes_limits_keys_but_not_users_on_a_jwt_or_api_key_route(
    client: FlaskClient, admin: dict[str, Any], user: dict[str, Any]
) -> None:
    unscoped = key_with(client, admin, ["billing:read"])
    scoped = key_with(client, admin, ["notes:read"])
    problem(
        client.get("/guarded/either/notes", headers=api_key(unscoped)), 403, "INSUFFICIENT_SCOPE"
    )
    assert client.get("/guarded/either/notes", headers=api_key(scoped)).status_code == 200
    response = client.get("/guarded/either/notes", headers=bearer(user["access_token"]))
    assert response.status_code == 200
    assert response.get_json()["type"] == "user"


def test_a_revoked_user_token_is_refused_on_a_jwt_or_api_key_route(
    client: FlaskClient, user: dict[str, Any]
) -> None:
    headers = bearer(user["access_token"])
    assert client.post("/userauth/logout", json={}, headers=headers).status_code == 204
    problem(client.get("/guarded/either", headers=headers), 401, "TOKEN_REVOKED")
