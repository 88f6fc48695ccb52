"""Module-defined events are typed and get the same admission, validation and acks as the
framework's; garbage from clients is answered, not fatal."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import socketio

from core.testing import Client
from modules.auth.testing import admin_tokens
from tests.support.packages import make_modules_package
from tests.websocket.conftest import Person

Serve = Callable[..., tuple[Any, str]]
MakePerson = Callable[[Any, str], Person]

MODULE = textwrap.dedent(
    """
    from pydantic import BaseModel

    from core.errors import Conflict
    from core.module import BaseModule


    class Roll(BaseModel):
        cheat: bool = False
        crash: bool = False


    class Rolled(BaseModel):
        user: str
        value: int


    class Announcement(BaseModel):
        text: str


    class Games(BaseModule):
        def register_socket_handlers(self, events):
            @events.on("roll", payload=Roll, ack=Rolled, errors={"CHEATING": 409})
            def roll(session, payload):
                \"\"\"Roll a die.\"\"\"
                if payload.cheat:
                    raise Conflict("No cheating.", code="CHEATING")
                if payload.crash:
                    raise RuntimeError("secret internals")
                # A field the ack model lacks never leaves.
                return {"user": session.user_id, "value": 4, "seed": "secret"}

            @events.on("peek", roles=["admin"], rate_limit="2/minute")
            def peek(session, payload):
                \"\"\"Admins only, twice a minute, no payload.\"\"\"
                assert payload is None
                return {"seen": True}

            @events.on("shout", payload={"type": "object", "required": ["text"],
                                         "properties": {"text": {"type": "string"}}})
            def shout(session, payload):
                get_app_manager().websocket.emit("announcement", payload, room=session.sid)
                get_app_manager().websocket.emit("undeclared", payload, room=session.sid)

            events.emits("announcement", Announcement, summary="Someone shouted.")


    from core.app_manager import get_app_manager
    """
)


@pytest.fixture
def games(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    package = make_modules_package(tmp_path, monkeypatch, {"games": MODULE})
    return {"MODULES_PACKAGES": f"modules,tests.support.modules,{package}"}


def test_a_module_event_is_authenticated_limited_and_its_errors_are_acks(
    serve: Serve, person: MakePerson, games: dict[str, str]
) -> None:
    app, url = serve({**games, "RATE_LIMIT_SOCKET": "3/minute"})
    ada = person(app, url)
    assert ada.call("roll", {}) == {"ok": True, "user": ada.id, "value": 4}
    assert ada.call("roll", {"cheat": True}) == {
        "ok": False,
        "error": {"code": "CHEATING", "message": "No cheating."},
    }
    crashed = ada.call("roll", {"crash": True})
    assert crashed == {
        "ok": False,
        "error": {"code": "INTERNAL_ERROR", "message": "An unexpected error occurred."},
    }
    assert ada.call("roll", {})["error"]["code"] == "RATE_LIMITED"


def test_a_payload_is_validated_by_its_model_before_the_handler(
    serve: Serve, person: MakePerson, games: dict[str, str]
) -> None:
    app, url = serve(games)
    ada = person(app, url)
    refused = ada.call("roll", {"cheat": "yes", "dice": 2})
    assert refused == {
        "ok": False,
        "error": {
            "code": "VALIDATION_ERROR",
            "message": "The request is not valid.",
            "errors": [
                {"field": "/cheat", "message": "must be true or false"},
                {"field": "/dice", "message": "is not allowed"},
            ],
        },
    }
    # A JSON Schema given as a dict works the same way, and the handler gets the dict.
    missing = ada.call("shout", {})
    assert missing["error"]["errors"] == [{"field": "/text", "message": "is required"}]


def test_roles_and_the_events_own_limit_are_enforced(
    serve: Serve,
    person: MakePerson,
    games: dict[str, str],
    socket_clients: Callable[[], Client],
) -> None:
    app, url = serve(games)
    ada = person(app, url)
    assert ada.call("peek", {})["error"]["code"] == "FORBIDDEN"
    admin = socket_clients()
    admin.connect(url, admin_tokens(app, app.test_client())["access_token"])
    assert admin.call("peek", {}) == {"ok": True, "seen": True}
    assert admin.call("peek", {"x": 1})["error"]["code"] == "VALIDATION_ERROR"
    assert admin.call("peek", {})["error"]["code"] == "RATE_LIMITED"


def test_the_server_sends_only_declared_events(
    serve: Serve, person: MakePerson, games: dict[str, str]
) -> None:
    app, url = serve(games)
    ada = person(app, url)
    answer = ada.call("shout", {"text": "hi"})
    assert answer == {
        "ok": False,
        "error": {"code": "INTERNAL_ERROR", "message": "An unexpected error occurred."},
    }
    assert ada.socket.wait_for("announcement") == [{"text": "hi"}]
    assert [name for name, _ in ada.socket.events] == ["announcement"]


def test_unknown_events_and_wrong_types_leave_the_server_healthy(
    serve: Serve, person: MakePerson
) -> None:
    app, url = serve()
    ada = person(app, url)
    ada.socket.sio.emit("no_such_event", {"x": 1})
    for data in (None, 42, "text", [1, 2], {"room_id": None}, {"room_id": ["a"]}):
        answer = ada.call("join_room", data)
        assert answer["ok"] is False, data
        assert answer["error"]["code"] == "VALIDATION_ERROR", data
    assert ada.call("list_rooms", {})["ok"] is True
    assert app.test_client().get("/health/ready").status_code == 200


def test_a_packet_over_the_size_limit_drops_only_that_client(
    serve: Serve, person: MakePerson, socket_clients: Callable[[], Client]
) -> None:
    app, url = serve({"SOCKETIO_MAX_BUFFER": "8192"})
    ada, bob = person(app, url), person(app, url)
    room = ada.call("create_room", {"name": "big"})["room"]
    ada.socket.sio.emit("send_message", {"room_id": room["id"], "body": "x" * 20000})
    assert ada.socket.disconnected.wait(5)
    assert bob.call("list_rooms", {})["ok"] is True


def test_events_before_a_connection_is_authenticated_are_refused(
    serve: Serve, socket_clients: Callable[[], Client]
) -> None:
    _, url = serve()
    client = socket_clients()
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect(url, None)
    assert client.connect_error["code"] == "AUTH_REQUIRED"
    assert not client.sio.connected


def test_sockets_are_counted_in_metrics(
    serve: Serve, person: MakePerson, socket_clients: Callable[[], Client]
) -> None:
    app, url = serve({"RATE_LIMIT_SOCKET": "2/minute"})
    ada = person(app, url)
    ada.call("list_rooms", {})
    ada.call("list_rooms", {})
    ada.call("list_rooms", {})  # limited
    with pytest.raises(socketio.exceptions.ConnectionError):
        socket_clients().connect(url, "garbage")
    scrape = app.test_client().get("/metrics").get_data(as_text=True)
    assert "socketio_connections 1.0" in scrape
    assert 'socketio_events_total{event="list_rooms",outcome="ok"} 2.0' in scrape
    assert 'socketio_events_total{event="list_rooms",outcome="RATE_LIMITED"} 1.0' in scrape
    assert 'rate_limit_rejections_total{level="socket",reason="limit"} 1.0' in scrape
    assert "TOKEN_INVALID" in scrape
