"""Presence in large rooms (decision 96): up to ``SOCKETIO_PRESENCE_EVENTS_MAX`` users a room
gets ``user_joined``/``user_left`` per user and full member lists; above it, a coalesced
``room_presence {room_id, member_count}`` instead, and member lists capped with the count."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.testing import Client, manager_of
from tests.support.presence import presence_left
from tests.support.servers import wait_until
from tests.websocket.conftest import Person

Serve = Callable[..., tuple[Any, str]]
MakePerson = Callable[[Any, str], Person]


def presence_events(who: Person, event: str) -> list[Any]:
    return [data for name, data in who.socket.events if name == event]


def about(who: Person, event: str, user: Person) -> list[Any]:
    return [data for data in presence_events(who, event) if data["user"]["user_id"] == user.id]


def test_a_room_past_the_limit_gets_a_count_instead_of_per_user_events(
    serve: Serve, person: MakePerson
) -> None:
    app, url = serve(
        {"SOCKETIO_PRESENCE_EVENTS_MAX": "3", "SOCKETIO_ROOM_PRESENCE_INTERVAL": "0.3"}
    )
    ada, bob, cat, dan = (person(app, url) for _ in range(4))
    room = ada.call("create_room", {"name": "big"})["room"]
    ref = {"room_id": room["id"]}

    # Up to the limit, as ever: every member hears of each user and sees everyone.
    assert bob.call("join_room", ref)["member_count"] == 2
    joined = cat.call("join_room", ref)
    assert joined["member_count"] == 3
    assert [m["user_id"] for m in joined["members"]] == sorted([ada.id, bob.id, cat.id])
    ada.socket.wait_for("user_joined", count=2)

    # The fourth user: no user_joined, a room_presence with the count to everyone in it.
    joined = dan.call("join_room", ref)
    assert joined["ok"] is True
    assert joined["member_count"] == 4
    everyone = {ada.id, bob.id, cat.id, dan.id}
    listed = [m["user_id"] for m in joined["members"]]
    assert len(listed) == 3
    assert set(listed) < everyone
    assert listed == sorted(listed)
    for who in (ada, bob, dan):
        assert who.socket.wait_for("room_presence") == [{"room_id": room["id"], "member_count": 4}]
    # user_joined would have been published before room_presence, on the same channel.
    assert not about(ada, "user_joined", dan)
    assert not about(bob, "user_joined", dan)

    members = ada.call("room_members", ref)
    assert members["member_count"] == 4
    assert len(members["members"]) == 3
    assert {m["user_id"] for m in members["members"]} < everyone

    # Leaving a large room (here by disconnecting): the count again, no user_left; back at
    # the limit, with who is in it.
    dan.socket.close()
    back = ada.socket.wait_for("room_presence", count=2)[1]
    assert back["member_count"] == 3
    assert [m["user_id"] for m in back["members"]] == sorted([ada.id, bob.id, cat.id])
    assert not about(ada, "user_left", dan)

    # Back at the limit: per-user events again.
    assert cat.call("leave_room", ref) == {"ok": True}
    assert ada.socket.wait_for("user_left")[0]["user"]["user_id"] == cat.id
    after = ada.call("room_members", ref)
    assert after["member_count"] == 2
    assert [m["user_id"] for m in after["members"]] == sorted([ada.id, bob.id])


def test_room_presence_is_coalesced_across_instances(serve: Serve, person: MakePerson) -> None:
    """Joins on two instances within one interval make one room_presence, to the members
    on both, with the count after the last of them."""
    settings = {"SOCKETIO_PRESENCE_EVENTS_MAX": "1", "SOCKETIO_ROOM_PRESENCE_INTERVAL": "4"}
    app_a, url_a = serve(settings)
    app_b, url_b = serve(settings)
    ada, cat = person(app_a, url_a), person(app_a, url_a)
    bob, dan = person(app_b, url_b), person(app_b, url_b)
    room = ada.call("create_room", {"name": "across"})["room"]
    ref = {"room_id": room["id"]}
    for who in (bob, cat, dan):  # each past the limit of 1: none gets user_joined
        assert who.call("join_room", ref)["ok"] is True

    expected = {"room_id": room["id"], "member_count": 4}
    assert ada.socket.wait_for("room_presence", timeout=15) == [expected]
    assert bob.socket.wait_for("room_presence", timeout=15) == [expected]

    # The next change is the next notice: nothing came in between.
    assert cat.call("leave_room", ref) == {"ok": True}
    counts = [e["member_count"] for e in ada.socket.wait_for("room_presence", 2, timeout=15)]
    assert counts == [4, 3]
    assert [e["member_count"] for e in presence_events(ada, "room_presence")] == [4, 3]
    assert not presence_events(ada, "user_joined")
    assert not presence_events(ada, "user_left")


def test_presence_events_count_users_not_sockets(
    serve: Serve, person: MakePerson, socket_clients: Callable[[], Client]
) -> None:
    """A user's second socket joining is no user_joined, its leaving no user_left: only the
    user's first socket in and last socket out are (the per-user counts of decision 96)."""
    app, url = serve()
    ada, bob, cat = person(app, url), person(app, url), person(app, url)
    bob_again = socket_clients()
    bob_again.connect(url, bob.tokens["access_token"])
    room = ada.call("create_room", {"name": "sockets"})["room"]
    ref = {"room_id": room["id"]}

    assert bob.call("join_room", ref)["member_count"] == 2
    assert bob_again.call("join_room", ref)["member_count"] == 2
    assert cat.call("join_room", ref)["member_count"] == 3
    joined = [e["user"]["user_id"] for e in ada.socket.wait_for("user_joined", 2)]
    assert joined == [bob.id, cat.id]

    assert bob_again.call("leave_room", ref) == {"ok": True}
    assert cat.call("leave_room", ref) == {"ok": True}
    bob.socket.close()
    left = [e["user"]["user_id"] for e in ada.socket.wait_for("user_left", 2)]
    assert left == [cat.id, bob.id]
    assert [e["user"]["user_id"] for e in presence_events(ada, "user_joined")] == joined
    assert ada.call("room_members", ref) == {
        "ok": True,
        "members": [{"user_id": ada.id, "username": ada.user["username"]}],
        "member_count": 1,
    }


def test_a_room_back_at_the_limit_hears_who_is_in_it(serve: Serve, person: MakePerson) -> None:
    """A room that shrinks back to ``SOCKETIO_PRESENCE_EVENTS_MAX`` users gets per-user events
    again, so its members need the list those events start from: who left while the room was
    large was never said. The ``room_presence`` that brings it back carries ``members``."""
    app, url = serve(
        {"SOCKETIO_PRESENCE_EVENTS_MAX": "2", "SOCKETIO_ROOM_PRESENCE_INTERVAL": "0.3"}
    )
    ada, bob, cat = (person(app, url) for _ in range(3))
    room = ada.call("create_room", {"name": "shrinks"})["room"]
    ref = {"room_id": room["id"]}
    assert bob.call("join_room", ref)["member_count"] == 2
    assert ada.socket.wait_for("user_joined")[0]["user"]["user_id"] == bob.id
    assert cat.call("join_room", ref)["member_count"] == 3  # past the limit: a count
    [large] = ada.socket.wait_for("room_presence")
    assert large == {"room_id": room["id"], "member_count": 3}  # no list in a large room

    # bob (whom ada's list holds) leaves a room of 3: a count, not a user_left.
    assert bob.call("leave_room", ref) == {"ok": True}
    back = ada.socket.wait_for("room_presence", count=2)[1]
    present = sorted([ada, cat], key=lambda who: who.id)
    assert back == {
        "room_id": room["id"],
        "member_count": 2,
        "members": [{"user_id": p.id, "username": p.user["username"]} for p in present],
    }
    assert not about(ada, "user_left", bob)

    # From that list on, the per-user events keep it right.
    assert cat.call("leave_room", ref) == {"ok": True}
    assert ada.socket.wait_for("user_left")[0]["user"]["user_id"] == cat.id


def test_a_crashed_instance_takes_only_its_own_sockets_out_of_the_counts(
    serve: Serve, person: MakePerson, socket_clients: Callable[[], Client]
) -> None:
    """A user with a socket on a live instance and one on an instance that crashes stays in
    the room when the crashed one is reaped (its socket count goes down by one, no
    ``user_left``); the user's last socket leaving later is the ``user_left``, and nothing of
    the room's users or counts is left in Redis."""
    settings = {"SOCKETIO_PRESENCE_TTL": "1"}
    app_a, url_a = serve(settings)
    app_b, url_b = serve(settings)
    ada, bob, cat = person(app_a, url_a), person(app_a, url_a), person(app_b, url_b)
    bob_on_b = socket_clients()
    bob_on_b.connect(url_b, bob.tokens["access_token"])
    room = ada.call("create_room", {"name": "crash"})["room"]
    ref = {"room_id": room["id"]}
    for who in (bob.socket, bob_on_b, cat.socket):
        assert who.call("join_room", ref)["ok"] is True
    assert ada.call("room_members", ref)["member_count"] == 3

    # Instance B "crashes" (as in test_instances): its heartbeat stops, its sockets'
    # presence stays until a live instance reaps it.
    manager_b = manager_of(app_b).websocket
    manager_b.sessions.clear()
    manager_b.close()
    reaper = manager_of(app_a).websocket

    def cat_present() -> bool:
        reaper.reap_dead_instances()
        return any(m["user_id"] == cat.id for m in reaper.members(room["id"]))

    wait_until(lambda: not cat_present(), what="B's sockets reaped", timeout=10)
    assert ada.socket.wait_for("user_left")[0]["user"]["user_id"] == cat.id
    after = ada.call("room_members", ref)
    assert after["member_count"] == 2
    assert [m["user_id"] for m in after["members"]] == sorted([ada.id, bob.id])
    assert not about(ada, "user_left", bob)

    # bob's socket on A is his last one in the room now.
    assert bob.call("leave_room", ref) == {"ok": True}
    assert ada.socket.wait_for("user_left", count=2)[1]["user"]["user_id"] == bob.id
    assert ada.call("leave_room", ref) == {"ok": True}
    redis = manager_of(app_a).redis
    left = presence_left(redis.client, redis.prefix)
    assert not [key for key in left if room["id"] in key], left


def test_an_instance_that_shuts_down_sends_the_counts_it_owes(
    serve: Serve, person: MakePerson
) -> None:
    """Closing an instance disconnects its sockets; in a large room their leaves claim the
    room's next ``room_presence`` on that instance, which sends it before it stops (a
    deploy must not leave the members elsewhere with the count from before it)."""
    settings = {"SOCKETIO_PRESENCE_EVENTS_MAX": "1", "SOCKETIO_ROOM_PRESENCE_INTERVAL": "1"}
    app_a, url_a = serve(settings)
    app_b, url_b = serve(settings)
    ada, cat = person(app_b, url_b), person(app_b, url_b)
    bob = person(app_a, url_a)
    room = ada.call("create_room", {"name": "deploy"})["room"]
    ref = {"room_id": room["id"]}
    assert cat.call("join_room", ref)["ok"] is True
    assert bob.call("join_room", ref)["ok"] is True

    def counted() -> list[int]:
        return [e["member_count"] for e in presence_events(ada, "room_presence")]

    wait_until(lambda: counted()[-1:] == [3], what="the count of 3", timeout=15)
    sent = len(counted())  # one notice, or two if the joins were an interval apart

    manager_of(app_a).websocket.close()  # bob's socket is closed: a leave, claimed on A
    assert bob.socket.disconnected.wait(15)
    notices = ada.socket.wait_for("room_presence", count=sent + 1, timeout=15)
    assert notices[sent] == {"room_id": room["id"], "member_count": 2}
    assert ada.call("room_members", ref)["member_count"] == 2
