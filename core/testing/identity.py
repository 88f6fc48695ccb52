"""Users, tokens and API keys for tests, made through the public HTTP API."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt as pyjwt
from flask import Flask
from flask.testing import FlaskClient

from core.app_manager import get_app_manager

PASSWORD = "correct-horse-battery"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def register(client: FlaskClient, **fields: str) -> dict[str, Any]:
    uid = uuid.uuid4().hex[:8]
    body = {"email": f"u{uid}@example.com", "username": f"user_{uid}", "password": PASSWORD}
    body.update(fields)
    response = client.post("/public/register", json=body)
    assert response.status_code == 201, response.get_json()
    user: dict[str, Any] = response.get_json()["user"]
    return user


def login(client: FlaskClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = client.post("/public/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.get_json()
    pair: dict[str, Any] = response.get_json()
    return pair


def user_with_tokens(client: FlaskClient, **fields: str) -> tuple[dict[str, Any], dict[str, Any]]:
    user = register(client, **fields)
    return user, login(client, user["email"])


def admin_tokens(app: Flask, client: FlaskClient) -> dict[str, Any]:
    """A registered user promoted to admin (the way `flask users set-roles` does), logged in."""
    user = register(client)
    with app.app_context():
        get_app_manager().services.get("auth").users.set_roles(user["email"], ["admin", "user"])
    return login(client, user["email"])


def create_api_key(
    client: FlaskClient, admin_access: str, scopes: list[str], **fields: Any
) -> dict[str, Any]:
    body = {"name": f"svc-{uuid.uuid4().hex[:6]}", "scopes": scopes, **fields}
    response = client.post("/userauth/api-keys", json=body, headers=bearer(admin_access))
    assert response.status_code == 201, response.get_json()
    created: dict[str, Any] = response.get_json()
    return created


def expired_access_token(access_token: str, secret: str) -> str:
    """An access token like ``access_token`` (same subject and key id), signed with
    ``secret``, that expired ten seconds ago."""
    claims = pyjwt.decode(access_token, options={"verify_signature": False})
    kid = pyjwt.get_unverified_header(access_token)["kid"]
    now = int(time.time())
    claims.update(iat=now - 100, nbf=now - 100, exp=now - 10, jti=uuid.uuid4().hex)
    return pyjwt.encode(claims, secret, "HS256", headers={"kid": kid})


def refused_tokens(tokens: dict[str, Any], secret: str) -> dict[str | None, str]:
    """Tokens a socket connect must refuse, each with its code: none, garbage, expired (same
    subject, signed with ``secret``), and the login's refresh token in place of its access
    token."""
    return {
        None: "AUTH_REQUIRED",
        "garbage": "TOKEN_INVALID",
        expired_access_token(tokens["access_token"], secret): "TOKEN_EXPIRED",
        tokens["refresh_token"]: "TOKEN_INVALID",
    }
