"""The auth module's pytest plugin: users and their tokens for any module's tests.

``core.testing.plugin`` loads it for every test session where the auth module is enabled (it
loads the ``testing.py`` of each enabled module), so a module that needs users gets:

=====================  ======================================================================
fixture                what it is
=====================  ======================================================================
``user``, ``admin``    a registered user's token pair; an admin's (roles admin and user)
``socket_client``      a Socket.IO client connected to ``live_server`` as ``user``
``app_env``            core's, plus cheap argon2 and per-IP auth limits tests never reach
=====================  ======================================================================

and the helpers below (``from modules.auth.testing import register, login, ...``), which go
through the module's public HTTP API.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.app_manager import get_app_manager
from core.testing.sockets import Client
from modules.auth.service import AuthService

PASSWORD = "correct-horse-battery"
#: The service this module registers (named after the package).
SERVICE = __name__.rsplit(".", 2)[-2]


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


def set_roles(app: Flask, email: str, roles: list[str]) -> None:
    """Give a user these roles, the way ``flask users set-roles`` does."""
    with app.app_context():
        get_app_manager().services.get(SERVICE, AuthService).users.set_roles(email, roles)


def admin_tokens(app: Flask, client: FlaskClient) -> dict[str, Any]:
    """A registered user promoted to admin (the way `flask users set-roles` does), logged in."""
    user = register(client)
    set_roles(app, user["email"], ["admin", "user"])
    return login(client, user["email"])


@pytest.fixture
def app_env(app_env: dict[str, str]) -> dict[str, str]:
    return {
        **app_env,
        # Cheap hashing keeps the suite fast; production parameters are the defaults.
        "ARGON2_TIME_COST": "1",
        "ARGON2_MEMORY_COST": "1024",
        # Every test client is 127.0.0.1: the per-IP limits of register, login and refresh
        # and the per-IP login failures are tested where they are the subject.
        "RATE_LIMIT_REGISTER": "1000/second",
        "RATE_LIMIT_LOGIN": "1000/second",
        "RATE_LIMIT_REFRESH": "1000/second",
        "LOGIN_IP_MAX_FAILURES": "1000",
    }


@pytest.fixture
def admin(app: Flask, client: FlaskClient) -> dict[str, Any]:
    """An admin's token pair (roles admin and user) on the test's ``app``."""
    return admin_tokens(app, client)


@pytest.fixture
def user(client: FlaskClient) -> dict[str, Any]:
    """A plain user's token pair (role ``user`` only); ``pair["user"]`` is the user."""
    _, pair = user_with_tokens(client)
    return pair


@pytest.fixture
def socket_client(
    live_server: str, user: dict[str, Any], socket_clients: Callable[[], Client]
) -> Client:
    """A Socket.IO client connected to ``live_server`` with ``user``'s access token."""
    connected = socket_clients()
    connected.connect(live_server, user["access_token"])
    return connected
