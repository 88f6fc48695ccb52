"""Attacks on rooms: filling other users' room lists, unbounded rooms and members, rooms that
never go away, and an answer that grows without bound. Each is performed and refused."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from core.testing import Client, manager_of
from tests.websocket.conftest import Person

Serve = Callable[..., tuple[Any, str]]
MakePerson = Callable[[Any, str], Person]


def names(who: Person) -> set[str]:
    return {room["name"] for room in who.call("list_rooms", {})["rooms"]}


def test_invitations_do_not_write_into_the_invitees_room_list(
    serve: Serve, person: MakePerson
) -> None:
    app, url = serve()
    eve, bob = person(app, url), person(app, url)
    spam = [
        eve.call("create_room", {"name": f"spam{i}", "private": True, "members": [bob.id]})
        for i in range(3)
    ]
    assert all(answer["ok"] for answer in spam)
    assert not names(bob) & {"spam0", "spam1", "spam2"}  # bob's list is his own
    redis = manager_of(app).redis
    listed = redis.client.smembers(redis.key("ws", "user", bob.id, "rooms"))
    assert listed == set()
    # The invitation still admits bob when he chooses to join.
    joined = bob.call("join_room", {"room_id": spam[0]["room"]["id"]})
    assert joined["ok"] is True
    assert "spam0" in names(bob)


def test_a_member_can_remove_themselves_from_a_private_room(
    serve: Serve, person: MakePerson
) -> None:
    app, url = serve()
    ada, bob = person(app, url), person(app, url)
    room = ada.call("create_room", {"name": "team", "private": True, "members": [bob.id]})["room"]
    assert bob.call("join_room", {"room_id": room["id"]})["ok"] is True

    assert bob.call("forget_room", {"room_id": room["id"]}) == {"ok": True}
    assert "team" not in names(bob)
    assert bob.id not in {
        m["user_id"] for m in ada.call("room_members", {"room_id": room["id"]})["members"]
    }
    again = bob.call("join_room", {"room_id": room["id"]})
    assert again["error"]["code"] == "FORBIDDEN"  # no longer a member
    owner = ada.call("forget_room", {"room_id": room["id"]})
    assert owner["error"]["code"] == "FORBIDDEN"  # the owner closes it instead


def test_rooms_per_owner_are_capped_even_when_created_at_once(
    serve: Serve, person: MakePerson, socket_clients: Callable[[], Client]
) -> None:
    app, url = serve({"SOCKETIO_MAX_ROOMS_PER_OWNER": "3"})
    ada = person(app, url)
    sockets = [ada.socket]
    for _ in range(5):
        extra = socket_clients()
        extra.connect(url, ada.tokens["access_token"])
        sockets.append(extra)
    answers: list[Any] = []

    def create(socket: Client, n: int) -> None:
        answers.append(socket.call("create_room", {"name": f"r{n}"}))

    threads = [threading.Thread(target=create, args=(s, n)) for n, s in enumerate(sockets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    created = [a["room"] for a in answers if a["ok"]]
    refused = [a["error"]["code"] for a in answers if not a["ok"]]
    assert len(created) <= 3
    assert refused
    assert set(refused) == {"TOO_MANY_ROOMS"}
    while len(created) < 3:
        created.append(ada.call("create_room", {"name": "fill"})["room"])
    assert ada.call("create_room", {"name": "one more"})["error"]["code"] == "TOO_MANY_ROOMS"
    assert ada.call("close_room", {"room_id": created[0]["id"]})["ok"] is True
    assert ada.call("create_room", {"name": "now fits"})["ok"] is True


def test_members_per_room_are_capped(serve: Serve, person: MakePerson) -> None:
    app, url = serve({"SOCKETIO_MAX_ROOM_MEMBERS": "3"})
    ada = person(app, url)
    too_many = ada.call("create_room", {"name": "big", "private": True, "members": ["a", "b", "c"]})
    assert too_many["error"]["code"] == "VALIDATION_ERROR"
    fits = ada.call("create_room", {"name": "ok", "private": True, "members": ["a", "b"]})
    assert fits["ok"] is True


def test_empty_rooms_expire_after_the_ttl(serve: Serve, person: MakePerson) -> None:
    app, url = serve({"SOCKETIO_ROOM_EMPTY_TTL": "1", "SOCKETIO_PRESENCE_TTL": "1"})
    ada, bob = person(app, url), person(app, url)
    empty = ada.call("create_room", {"name": "empty"})["room"]
    busy = ada.call("create_room", {"name": "busy"})["room"]
    assert bob.call("join_room", {"room_id": busy["id"]})["ok"] is True
    assert ada.call("leave_room", {"room_id": empty["id"]})["ok"] is True

    redis = manager_of(app).redis
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and redis.client.exists(redis.key("ws", "room", empty["id"])):
        time.sleep(0.2)
    assert not redis.client.exists(redis.key("ws", "room", empty["id"]))
    assert bob.call("join_room", {"room_id": empty["id"]})["error"]["code"] == "NOT_FOUND"
    assert "empty" not in names(ada)
    assert not redis.client.sismember(redis.key("ws", "owner", ada.id, "rooms"), empty["id"])
    # A room someone is in stays, however long.
    assert bob.call("room_members", {"room_id": busy["id"]})["ok"] is True


def test_list_rooms_is_bounded(serve: Serve, person: MakePerson) -> None:
    app, url = serve({"SOCKETIO_LIST_ROOMS_MAX": "3"})
    ada, bob = person(app, url), person(app, url)
    for n in range(3):
        assert bob.call("create_room", {"name": f"bob{n}"})["ok"] is True
    mine = ada.call("create_room", {"name": "mine"})["room"]
    answer = ada.call("list_rooms", {})
    assert len(answer["rooms"]) == 3
    assert answer["more"] is True
    assert mine in answer["rooms"]  # the caller's own rooms come first
    small = person(app, url)
    assert small.call("list_rooms", {})["more"] is True
