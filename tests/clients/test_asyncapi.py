"""``GET /asyncapi.json`` is a valid AsyncAPI 3.0 document (checked by the official
``@asyncapi/parser``, pinned in tests/clients/js) that lists every event a socket can send or
receive, compared with what the server registers."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from core.app_manager import get_app_manager
from tests.support.js_client import JS_DIR

# Every event of the project, its modules' included (tests/core/test_scaffold.py).
pytestmark = pytest.mark.project_wide

#: Socket.IO's own events, which are not the app's.
BUILT_IN = {"connect", "disconnect"}


@pytest.fixture
def document(app: Flask) -> dict[str, Any]:
    response = app.test_client().get("/asyncapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body: dict[str, Any] = response.get_json()
    return body


@pytest.fixture
def parsed(node: Path, document: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """What the official parser says of the document."""
    path = tmp_path / "asyncapi.json"
    path.write_text(json.dumps(document))
    done = subprocess.run(
        [str(node), str(JS_DIR / "asyncapi.mjs"), str(path)],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_the_official_parser_finds_no_error_and_no_warning(parsed: dict[str, Any]) -> None:
    assert parsed["errors"] == []
    assert parsed["warnings"] == []


def test_it_lists_every_event_a_socket_can_send_or_receive(
    app: Flask, parsed: dict[str, Any]
) -> None:
    with app.app_context():
        websocket = get_app_manager().websocket
    registered = set(websocket.socketio.server.handlers["/"]) - BUILT_IN
    declared_sends = set(websocket.events.server)
    received = {op["channel"] for op in parsed["operations"] if op["action"] == "receive"}
    sent = {op["channel"] for op in parsed["operations"] if op["action"] == "send"}

    assert received == registered
    assert sent == declared_sends
    # The framework's own and a module's, both ways.
    assert {"create_room", "send_message", "typed_probe.echo"} <= received
    assert {"message", "user_joined", "user_left", "room_closed"} <= sent
    assert {"session_ended", "server_shutdown", "typed_probe.tick"} <= sent
    for operation in parsed["operations"]:
        if operation["action"] == "receive":  # answered through the ack: success or refusal
            name = operation["channel"]
            assert operation["reply"] == [f"{name}.ack", "Refused"], operation


def test_schemas_are_the_ones_the_server_validates_with(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    echo = document["channels"]["typed_probe.echo"]["messages"]
    request = echo["typed_probe.echo.request"]["payload"]
    assert request == {"$ref": "#/components/schemas/Echo"}
    assert schemas["Echo"]["additionalProperties"] is False
    assert schemas["Echo"]["properties"]["text"]["maxLength"] == 100
    ack = echo["typed_probe.echo.ack"]["payload"]
    assert ack["properties"]["ok"] == {"const": True}
    assert set(ack["required"]) == {"ok", "text", "tags"}
    operation = document["operations"]["on.typed_probe.echo"]
    assert operation["x-errors"] == {"ECHO_REFUSED": 409}
    assert operation["summary"] == "Echo the text and tags back."
    # A JSON Schema payload keeps its definitions, as components.
    point = document["channels"]["typed_probe.point"]["messages"]["typed_probe.point.request"]
    ref = point["payload"]["properties"]["at"]["$ref"]
    assert schemas[ref.rpartition("/")[2]]["required"] == ["x", "y"]
    # The framework's chat message names its sender "from", as clients see it.
    assert "from" in schemas["ChatMessage"]["properties"]
