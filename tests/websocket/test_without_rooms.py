"""``MODULES_DISABLED=rooms``: the chat rooms are a module like any other. Without it the app
serves no room events, and the framework's rooms (membership, presence, the room log) still
serve another module through the public calls alone."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.app_manager import get_app_manager
from tests.support.packages import make_modules_package
from tests.support.servers import wait_until
from tests.websocket.conftest import Person

Serve = Callable[..., tuple[Any, str]]
MakePerson = Callable[[Any, str], Person]

ROOM_EVENTS = {
    "create_room",
    "join_room",
    "leave_room",
    "send_message",
    "room_history",
    "list_rooms",
    "forget_room",
    "room_members",
    "close_room",
}

#: One shared room, entered and spoken in through WebSocketManager's public calls.
LOBBY = textwrap.dedent(
    """
    from pydantic import BaseModel, Field

    from core.app_manager import get_app_manager
    from core.module import BaseModule


    class Enter(BaseModel):
        since: int | None = Field(None, ge=0)


    class Say(BaseModel):
        body: str


    class Lobby(BaseModule):
        def register_socket_handlers(self, events):
            @events.on("lobby.enter", payload=Enter)
            def enter(session, payload):
                joined = get_app_manager().websocket.join(session, "lobby", payload.since)
                return {"seq": joined.seq, "missed": joined.missed}

            @events.on("lobby.say", payload=Say)
            def say(session, payload):
                data = {"from": session.user, "body": payload.body}
                return get_app_manager().websocket.emit("message", data, room="lobby")
    """
)


def member(person: Person) -> dict[str, str]:
    return {"user_id": person.id, "username": person.user["username"]}


@pytest.fixture
def lobby(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    package = make_modules_package(tmp_path, monkeypatch, {"lobby": LOBBY})
    return {
        "MODULES_PACKAGES": f"modules,{package}",
        "MODULES_DISABLED": "rooms",
        # The rooms module's setting is not loaded, so a value it would refuse stops nothing.
        "SOCKETIO_MAX_ROOM_MEMBERS": "0",
    }


def test_without_the_rooms_module_no_room_event_is_served(
    serve: Serve, person: MakePerson, lobby: dict[str, str]
) -> None:
    app, url = serve(lobby)
    with app.app_context():
        websocket = get_app_manager().websocket
        enabled = {m["name"]: m["enabled"] for m in get_app_manager().modules.status()}
    assert enabled["rooms"] is False
    document = app.test_client().get("/asyncapi.json").get_json()
    channels = set(document["channels"])
    assert not ROOM_EVENTS & channels
    assert not ROOM_EVENTS & set(websocket.socketio.server.handlers["/"])
    assert "room_closed" not in websocket.events.server
    # The framework's room machinery stays, for any module's rooms.
    assert {"message", "user_joined", "user_left", "refresh_session"} <= channels

    ada, bob = person(app, url), person(app, url)
    assert ada.call("lobby.enter", {}) == {"ok": True, "seq": 0, "missed": []}
    assert bob.call("lobby.enter", {})["ok"] is True
    assert ada.socket.wait_for("user_joined")[0] == {"room_id": "lobby", "user": member(bob)}
    said = [bob.call("lobby.say", {"body": str(n)}) for n in range(3)]
    assert [m["seq"] for m in said] == [1, 2, 3]
    assert [m["body"] for m in ada.socket.wait_for("message", count=3)] == ["0", "1", "2"]
    assert websocket.members("lobby") == sorted(
        [member(ada), member(bob)], key=lambda user: user["user_id"]
    )
    later = person(app, url)  # recovers what it missed from the room log
    recovered = later.call("lobby.enter", {"since": 1})
    assert [m["body"] for m in recovered["missed"]] == ["1", "2"]

    bob.socket.close()
    assert ada.socket.wait_for("user_left")[0]["user"] == member(bob)
    wait_until(lambda: bob.id not in {m["user_id"] for m in websocket.members("lobby")}, 5)
