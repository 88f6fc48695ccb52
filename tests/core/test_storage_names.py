"""Module names that collide with the framework's storage are refused (issue 22): a module
called ``users`` used to write into the auth module's ``users`` collection (500 on its second
create). The list of taken names is checked against what a running app really writes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from core.cli.module import storage_names
from core.testing import AppFactory, Client, bearer, manager_of, serving
from modules.api_keys.testing import create_api_key
from modules.auth.testing import admin_tokens, login, register
from tests.support.servers import wait_until

#: The core's own names plus collections the shipped modules declare.
COLLIDING = ["users", "auth_sessions", "quotas", "states", "jwt", "rl", "ws", "state"]


@pytest.mark.parametrize("name", COLLIDING)
def test_flask_module_new_refuses_a_name_the_framework_stores_under(
    make_app: AppFactory, name: str
) -> None:
    result = make_app(start=False).test_cli_runner().invoke(args=["module", "new", name])
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"Error: {name!r} is ")
    assert "a module of that name would write into it; choose another name" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_every_name_a_running_app_stores_under_is_taken(
    make_app: AppFactory, socket_clients: Callable[[], Client]
) -> None:
    """Traffic through every store-writing feature, then: each MongoDB collection and each
    first segment of a Redis key is a taken name (the framework's or a module's)."""
    app: Flask = make_app()
    client = app.test_client()
    admin = admin_tokens(app, client)["access_token"]
    create_api_key(client, admin, [])
    user = register(client)
    pair = login(client, user["email"])
    client.post("/public/login", json={"email": user["email"], "password": "wrong-one"})
    assert (
        client.post(
            "/actions/notes.create",
            json={"title": "t", "body": ""},
            headers=bearer(pair["access_token"]),
        ).status_code
        == 200
    )
    switch = "/userauth/admin/maintenance"
    client.post(switch, json={"enabled": True, "message": "m"}, headers=bearer(admin))
    client.post(switch, json={"enabled": False}, headers=bearer(admin))
    with serving(app) as url:
        socket = socket_clients()
        socket.connect(url, pair["access_token"])
        client.post("/userauth/logout", json={}, headers=bearer(pair["access_token"]))
        wait_until(lambda: socket.disconnected.is_set(), what="the socket dropped")

    manager: Any = manager_of(app)
    taken = set(storage_names(manager)) | {m["name"] for m in manager.modules.status()}
    collections = set(manager.database.mongo.db.list_collection_names())
    prefix = manager.settings.redis_key_prefix
    namespaces = {
        key.decode()[len(prefix) :].split(":", 1)[0]
        for key in manager.redis.client.scan_iter(f"{prefix}*")
    }
    assert {"users", "auth_sessions", "api_keys", "notes", "states"} <= collections
    assert {"rl", "jwt", "auth"} <= namespaces
    assert collections - taken == set()
    assert namespaces - taken == set()
