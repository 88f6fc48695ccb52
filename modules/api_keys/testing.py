"""The api_keys module's pytest plugin: API keys for any module's tests.

``core.testing.plugin`` loads it for every test session where the api_keys module is enabled.
The ``api_key`` fixture makes its key the way ``flask api-keys create`` does, so it needs no
users (it works with ``MODULES_DISABLED=auth``); :func:`create_api_key` goes through the
module's admin route with an admin's access token.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.app_manager import get_app_manager
from core.testing.tokens import bearer


def create_api_key(
    client: FlaskClient, admin_access: str, scopes: list[str], **fields: Any
) -> dict[str, Any]:
    """A key made through ``POST /userauth/api-keys`` as the admin of ``admin_access``."""
    body = {"name": f"svc-{uuid.uuid4().hex[:6]}", "scopes": scopes, **fields}
    response = client.post("/userauth/api-keys", json=body, headers=bearer(admin_access))
    assert response.status_code == 201, response.get_json()
    created: dict[str, Any] = response.get_json()
    return created


@pytest.fixture
def api_key(app: Flask) -> dict[str, Any]:
    """An API key without scopes, as created (``["key"]`` is the full key)."""
    with app.app_context():
        return get_app_manager().api_keys.create(
            f"svc-{uuid.uuid4().hex[:6]}", [], None, created_by="test"
        )
