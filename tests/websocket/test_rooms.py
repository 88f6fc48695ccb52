"""Rooms over real websockets: connect auth, every event's ack, privacy, limits."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import socketio

from core.testing import TEST_JWT_SECRET, Client, bearer, refused_tokens
from tests.websocket.conftest import Person

Serve = Callable[..., tuple[Any, str]]
MakePerson = Callable[[Any, str], Person]


def refused(client: Client, url: str, token: str | None) -> Any:
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect(url, token)
    return client.connect_error


def test_connect_is_refused_without_a_valid_token(
    serve: Serve, socket_clients: Callable[[], Client], person: MakePerson
) -> None:
    app, url = serve()
    ada = person(app, url)  # a valid user, for a real kid
    for token, code in refused_tokens(ada.tokens, TEST_JWT_SECRET).items():
        error = refused(socket_clients(), url, token)
        assert error["code"] == code, (token, error)
        assert error["message"]
        # The same error under "data", where socket.io-client (JS) exposes it as err.data.
        assert error["data"] == {"code": code, "message": error["message"]}

    logged_out = person(app, url)
    app.test_client().post("/userauth/logout", headers=bearer(logged_out.tokens["access_token"]))
    error = refused(socket_clients(), url, logged_out.tokens["access_token"])
    revoked = {"code": "TOKEN_REVOKED", "message": "The token has been revoked."}
    assert error == {**revoked, "data": revoked}


def test_create_join_send_leave_with_acks(serve: Serve, person: MakePerson) -> None:
    app, url = serve()
    ada, bob = person(app, url), person(app, url)

    created = ada.call("create_room", {"name": "general"})
    assert created["ok"] is True
    room = created["room"]
    assert room == {"id": room["id"], "name": "general", "private": False, "owner": ada.id}

    joined = bob.call("join_room", {"room_id": room["id"]})
    assert joined["ok"] is True
    assert joined["room"] == room
    assert [m["user_id"] for m in joined["members"]] == sorted([ada.id, bob.id])
    (notice,) = ada.socket.wait_for("user_joined")
    assert notice == {
        "room_id": room["id"],
        "user": {"user_id": bob.id, "username": bob.user["username"]},
    }

    sent = bob.call("send_message", {"room_id": room["id"], "body": "héllo"})
    assert sent["ok"] is True
    message = sent["message"]
    assert message["from"] == {"user_id": bob.id, "username": bob.user["username"]}
    assert message["body"] == "héllo"
    assert message["ts"].endswith("Z")
    assert ada.socket.wait_for("message") == [message]
    assert bob.socket.wait_for("message") == [message]

    members = ada.call("room_members", {"room_id": room["id"]})
    assert {m["user_id"] for m in members["members"]} == {ada.id, bob.id}

    assert bob.call("leave_room", {"room_id": room["id"]}) == {"ok": True}
    (left,) = ada.socket.wait_for("user_left")
    assert left["user"]["user_id"] == bob.id
    after = ada.call("room_members", {"room_id": room["id"]})["members"]
    assert [m["user_id"] for m in after] == [ada.id]
    not_in = bob.call("send_message", {"room_id": room["id"], "body": "late"})
    assert not_in["ok"] is False
    assert not_in["error"]["code"] == "NOT_IN_ROOM"


def test_private_rooms_admit_only_owner_and_members(serve: Serve, person: MakePerson) -> None:
    app, url = serve()
    ada, bob, eve = person(app, url), person(app, url), person(app, url)
    room = ada.call("create_room", {"name": "secret", "private": True, "members": [bob.id]})["room"]
    assert room["private"] is True

    assert bob.call("join_room", {"room_id": room["id"]})["ok"] is True
    denied = eve.call("join_room", {"room_id": room["id"]})
    assert denied == {
        "ok": False,
        "error": {"code": "FORBIDDEN", "message": "This room is private."},
    }
    assert eve.call("room_members", {"room_id": room["id"]})["error"]["code"] == "FORBIDDEN"
    assert eve.call("send_message", {"room_id": room["id"], "body": "hi"})["error"]["code"] == (
        "NOT_IN_ROOM"
    )
    ada.call("send_message", {"room_id": room["id"], "body": "for members only"})
    bob.socket.wait_for("message")
    time.sleep(0.2)
    assert not [e for e in eve.socket.events if e[0] == "message"]


def test_list_rooms_shows_public_rooms_and_the_callers_own(
    serve: Serve, person: MakePerson
) -> None:
    app, url = serve()
    ada, bob, eve = person(app, url), person(app, url), person(app, url)
    lobby = ada.call("create_room", {"name": "lobby"})["room"]
    secret = ada.call("create_room", {"name": "secret", "private": True, "members": [bob.id]})[
        "room"
    ]

    def names(who: Person) -> set[str]:
        return {r["name"] for r in who.call("list_rooms", {})["rooms"]}

    assert names(ada) >= {"lobby", "secret"}
    assert "secret" not in names(bob)  # invited: listed once bob joins it himself
    assert bob.call("join_room", {"room_id": secret["id"]})["ok"] is True
    assert names(bob) >= {"lobby", "secret"}
    assert "secret" not in names(eve)
    assert "lobby" in names(eve)
    assert lobby["id"] != secret["id"]


@pytest.mark.parametrize(
    ("event", "data", "code", "field"),
    [
        ("create_room", {"name": ""}, "VALIDATION_ERROR", None),
        ("create_room", {"name": "x" * 65}, "VALIDATION_ERROR", None),
        ("create_room", {"name": "ok", "private": "yes"}, "VALIDATION_ERROR", None),
        ("create_room", {"name": "ok", "members": "bob"}, "VALIDATION_ERROR", None),
        ("join_room", {"room_id": 5}, "VALIDATION_ERROR", None),
        ("join_room", {"room_id": "does-not-exist"}, "NOT_FOUND", None),
        ("send_message", {"room_id": "r", "body": ""}, "VALIDATION_ERROR", None),
        ("create_room", "not an object", "VALIDATION_ERROR", None),
    ],
)
def test_bad_event_data_gets_an_error_ack(
    serve: Serve, person: MakePerson, event: str, data: Any, code: str, field: str | None
) -> None:
    app, url = serve()
    ada = person(app, url)
    answer = ada.call(event, data)
    assert answer["ok"] is False
    assert answer["error"]["code"] == code
    assert answer["error"]["message"]


def test_body_is_limited_to_4096_bytes_of_utf8(serve: Serve, person: MakePerson) -> None:
    app, url = serve()
    ada = person(app, url)
    room = ada.call("create_room", {"name": "r"})["room"]
    assert ada.call("send_message", {"room_id": room["id"], "body": "a" * 4096})["ok"] is True
    too_big = ada.call("send_message", {"room_id": room["id"], "body": "é" * 2049})  # 4098 bytes
    assert too_big["error"]["code"] == "VALIDATION_ERROR"


def test_socket_events_are_rate_limited_per_user(serve: Serve, person: MakePerson) -> None:
    app, url = serve({"RATE_LIMIT_SOCKET": "3/minute"})
    ada = person(app, url)
    answers = [ada.call("list_rooms", {}) for _ in range(4)]
    assert [a["ok"] for a in answers] == [True, True, True, False]
    assert answers[3]["error"]["code"] == "RATE_LIMITED"


def test_closing_a_room_tells_its_members(serve: Serve, person: MakePerson) -> None:
    app, url = serve()
    ada, bob = person(app, url), person(app, url)
    room = ada.call("create_room", {"name": "temp"})["room"]
    bob.call("join_room", {"room_id": room["id"]})
    assert bob.call("close_room", {"room_id": room["id"]})["error"]["code"] == "FORBIDDEN"
    assert ada.call("close_room", {"room_id": room["id"]}) == {"ok": True}
    assert bob.socket.wait_for("room_closed") == [{"room_id": room["id"]}]
    assert bob.call("join_room", {"room_id": room["id"]})["error"]["code"] == "NOT_FOUND"
