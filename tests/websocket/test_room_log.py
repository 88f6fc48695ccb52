"""Ordered rooms: ``seq`` per room across instances, history in Redis, recovery on join,
``room_history``, and the join ack ahead of the room's next live message (docs/websockets.md,
"Ordered rooms")."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import redis

from core.app_manager import get_app_manager
from tests.support.wire import RawSocket, parse
from tests.websocket.conftest import Person

Serve = Callable[..., tuple[Any, str]]
MakePerson = Callable[[Any, str], Person]


def send(person: Person, room_id: str, body: str) -> dict[str, Any]:
    ack = person.call("send_message", {"room_id": room_id, "body": body})
    assert ack["ok"] is True, ack
    message: dict[str, Any] = ack["message"]
    return message


@contextmanager
def raw_member(url: str, token: str) -> Iterator[RawSocket]:
    raw = RawSocket(url)
    try:
        assert raw.connect({"token": token}).startswith("40")
        yield raw
    finally:
        raw.close()


def redis_client(app: Any) -> tuple[redis.Redis, str]:
    with app.app_context():
        manager = get_app_manager()
        return manager.redis.client, manager.settings.redis_key_prefix


def test_concurrent_senders_on_two_instances_get_gapless_seq_in_order(
    serve: Serve, person: MakePerson
) -> None:
    app_a, url_a = serve({"RATE_LIMIT_SOCKET": "100000/second"})
    app_b, url_b = serve({"RATE_LIMIT_SOCKET": "100000/second"})
    senders = [person(app_a, url_a), person(app_a, url_a), person(app_b, url_b)]
    room_id = senders[0].call("create_room", {"name": "race"})["room"]["id"]
    for other in senders[1:]:
        assert other.call("join_room", {"room_id": room_id})["ok"] is True
    watcher = person(app_b, url_b)
    with raw_member(url_b, watcher.tokens["access_token"]) as raw:
        raw.call(1, "join_room", {"room_id": room_id})
        per_sender = 25
        acked: list[int] = []
        lock = threading.Lock()

        def flood(who: Person, label: str) -> None:
            for n in range(per_sender):
                seq = send(who, room_id, f"{label}-{n}")["seq"]
                with lock:
                    acked.append(seq)

        threads = [
            threading.Thread(target=flood, args=(who, str(i))) for i, who in enumerate(senders)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        total = per_sender * len(senders)
        # Every number exactly once, whichever instance sent it: no gap, no repeat.
        assert sorted(acked) == list(range(1, total + 1))

        # A member sees them in seq order, frame after frame on the wire.
        seen: list[int] = []
        deadline = time.monotonic() + 20
        while len(seen) < total and time.monotonic() < deadline:
            for frame in raw.receive(0.5):
                kind, name, data = parse(frame)
                if kind == "event" and name == "message":
                    seen.append(data["seq"])
        assert seen == list(range(1, total + 1))


def test_the_join_ack_comes_before_the_rooms_next_live_message(
    serve: Serve, person: MakePerson
) -> None:
    """Joins while another instance floods the room: on the wire, no live message of the
    room before the ack; the ack's ``missed`` takes the client to its ``seq``; live messages
    continue at ``seq + 1``."""
    app_a, url_a = serve({"RATE_LIMIT_SOCKET": "100000/second"})
    app_b, url_b = serve({"RATE_LIMIT_SOCKET": "100000/second"})
    sender = person(app_b, url_b)
    room_id = sender.call("create_room", {"name": "busy"})["room"]["id"]
    joiner = person(app_a, url_a)
    stop = threading.Event()

    def flood() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            send(sender, room_id, f"m{n}")

    flooder = threading.Thread(target=flood)
    flooder.start()
    try:
        since = 0
        for attempt in range(8):
            with raw_member(url_a, joiner.tokens["access_token"]) as raw:
                raw.send("421" + '["join_room",' + f'{{"room_id":"{room_id}","since":{since}}}]')
                frames = raw.receive(1.5)
            ack = None
            last = since
            for frame in frames:
                kind, name, data = parse(frame)
                if kind == "ack":
                    ack = data
                    assert ack["ok"] is True, ack
                    missed = [m["seq"] for m in ack["missed"]]
                    assert missed == list(range(since + 1, ack["seq"] + 1)), (attempt, ack)
                    assert ack["recovered"] is True
                    last = ack["seq"]
                elif kind == "event" and name == "message":
                    assert ack is not None, f"a live message before the ack: {frame}"
                    assert data["seq"] == last + 1, (attempt, data["seq"], last)
                    last = data["seq"]
            assert ack is not None
            assert last > since  # the flood went on while it was connected
            since = last
    finally:
        stop.set()
        flooder.join(10)


def test_a_client_that_was_away_recovers_what_it_missed(serve: Serve, person: MakePerson) -> None:
    app_a, url_a = serve()
    app_b, url_b = serve()
    ada, bob = person(app_a, url_a), person(app_b, url_b)
    room_id = ada.call("create_room", {"name": "away"})["room"]["id"]
    first = bob.call("join_room", {"room_id": room_id})
    assert (first["seq"], first["recovered"], first["missed"]) == (0, True, [])
    seen = send(ada, room_id, "before")["seq"]
    assert bob.socket.wait_for("message")[0]["seq"] == seen == 1

    bob.socket.close()  # offline
    sent = [send(ada, room_id, f"while away {n}") for n in range(5)]

    back = Person.__new__(Person)  # the same user, a new socket (as after a reconnect)
    back.user, back.tokens, back.id = bob.user, bob.tokens, bob.id
    back.socket = type(bob.socket)()
    try:
        back.socket.connect(url_b, bob.tokens["access_token"])
        ack = back.call("join_room", {"room_id": room_id, "since": seen})
        assert ack["ok"] is True
        assert ack["seq"] == 6
        assert ack["recovered"] is True
        assert ack["missed"] == sent  # each message whole, in order
        # Live messages continue the sequence.
        assert send(ada, room_id, "back")["seq"] == 7
        assert [m["seq"] for m in back.socket.wait_for("message")] == [7]
        # Already up to date: nothing missed.
        again = back.call("join_room", {"room_id": room_id, "since": 7})
        assert (again["seq"], again["recovered"], again["missed"]) == (7, True, [])
    finally:
        back.socket.close()


def test_history_is_bounded_in_length_and_in_time(serve: Serve, person: MakePerson) -> None:
    app, url = serve(
        {
            "SOCKETIO_HISTORY_MAX": "5",
            "SOCKETIO_HISTORY_SECONDS": "2",
            "RATE_LIMIT_SOCKET": "100000/second",
        }
    )
    ada = person(app, url)
    room_id = ada.call("create_room", {"name": "bounded"})["room"]["id"]
    for n in range(40):
        send(ada, room_id, f"m{n}" + "x" * 1000)
    client, prefix = redis_client(app)
    log = f"{prefix}ws:log:{room_id}"
    assert client.xlen(log) == 5  # however many were sent
    assert 0 < client.pttl(log) <= 2000
    assert int(client.get(f"{log}:seq")) == 40

    # What no longer reaches back is said so; `missed` is the retained tail.
    ack = ada.call("join_room", {"room_id": room_id, "since": 30})
    assert ack["recovered"] is False
    assert [m["seq"] for m in ack["missed"]] == [36, 37, 38, 39, 40]
    page = ada.call("room_history", {"room_id": room_id})
    assert [m["seq"] for m in page["messages"]] == [36, 37, 38, 39, 40]
    assert page["more"] is False

    # A quiet room's history goes after SOCKETIO_HISTORY_SECONDS; its numbers stay.
    deadline = time.monotonic() + 10
    while client.exists(log) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not client.exists(log)
    gone = ada.call("join_room", {"room_id": room_id, "since": 38})
    assert (gone["seq"], gone["recovered"], gone["missed"]) == (40, False, [])
    current = ada.call("join_room", {"room_id": room_id, "since": 40})
    assert (current["recovered"], current["missed"]) == (True, [])
    assert send(ada, room_id, "after the quiet")["seq"] == 41


def test_room_history_pages_backwards(serve: Serve, person: MakePerson) -> None:
    app, url = serve({"RATE_LIMIT_SOCKET": "100000/second"})
    ada, bob, eve = person(app, url), person(app, url), person(app, url)
    room_id = ada.call("create_room", {"name": "pages"})["room"]["id"]
    sent = [send(ada, room_id, f"m{n}") for n in range(1, 8)]

    # Not a member yet but allowed to join (a public room): may read.
    newest = bob.call("room_history", {"room_id": room_id, "limit": 3})
    assert newest["ok"] is True
    assert newest["messages"] == sent[4:]  # seq 5, 6, 7, oldest first
    assert newest["more"] is True
    older = bob.call("room_history", {"room_id": room_id, "before": 5, "limit": 3})
    assert [m["seq"] for m in older["messages"]] == [2, 3, 4]
    assert older["more"] is True
    oldest = bob.call("room_history", {"room_id": room_id, "before": 2})
    assert [m["seq"] for m in oldest["messages"]] == [1]
    assert oldest["more"] is False
    assert bob.call("room_history", {"room_id": room_id, "before": 1}) == {
        "ok": True,
        "messages": [],
        "more": False,
    }

    private = ada.call("create_room", {"name": "secret", "private": True})["room"]["id"]
    send(ada, private, "hush")
    refused = eve.call("room_history", {"room_id": private})
    assert refused["error"]["code"] == "FORBIDDEN"
    assert eve.call("room_history", {"room_id": "nope"})["error"]["code"] == "NOT_FOUND"
    for bad in ({"limit": 0}, {"limit": 101}, {"limit": "5"}, {"before": -1}, {"before": 1.5}):
        answer = bob.call("room_history", {"room_id": room_id, **bad})
        assert answer["error"]["code"] == "VALIDATION_ERROR", (bad, answer)
    for bad_since in (-1, "3", True):
        answer = bob.call("join_room", {"room_id": room_id, "since": bad_since})
        assert answer["error"]["code"] == "VALIDATION_ERROR", (bad_since, answer)


def test_a_closed_rooms_numbers_and_history_are_gone(serve: Serve, person: MakePerson) -> None:
    app, url = serve()
    ada = person(app, url)
    room_id = ada.call("create_room", {"name": "closing"})["room"]["id"]
    send(ada, room_id, "last words")
    client, prefix = redis_client(app)
    assert client.exists(f"{prefix}ws:log:{room_id}", f"{prefix}ws:log:{room_id}:seq") == 2
    assert ada.call("close_room", {"room_id": room_id})["ok"] is True
    assert client.exists(f"{prefix}ws:log:{room_id}", f"{prefix}ws:log:{room_id}:seq") == 0


def test_emit_from_outside_an_event_numbers_and_keeps_room_messages(
    serve: Serve, person: MakePerson
) -> None:
    """A route, an action or a background job: ``websocket.emit`` with an app context."""
    app, url = serve()
    ada = person(app, url)
    room_id = ada.call("create_room", {"name": "news"})["room"]["id"]
    send(ada, room_id, "first")
    bot = {"user_id": "system", "username": "news-bot"}
    with app.app_context():
        websocket = get_app_manager().websocket
        # Any other event is declared by its module first (register_socket_handlers).
        websocket.events.emits("notice", {"type": "object"}, summary="A notice to a room.")
        published = websocket.emit("message", {"from": bot, "body": "extra!"}, room=room_id)
        notice = websocket.emit("notice", {"room_id": room_id, "text": "hello"}, room=room_id)
    assert published["seq"] == 2
    assert published["from"] == bot
    assert set(published) == {"id", "room_id", "seq", "from", "body", "ts"}
    received = ada.socket.wait_for("message", count=2)
    assert received[1] == published
    assert ada.socket.wait_for("notice") == [notice]  # any other event: sent as it is
    history = ada.call("room_history", {"room_id": room_id})["messages"]
    assert [m["body"] for m in history] == ["first", "extra!"]


def test_events_stay_in_order_per_socket_with_many_rooms(serve: Serve, person: MakePerson) -> None:
    """Several rooms published concurrently: each room's messages in its own seq order."""
    app_a, url_a = serve({"RATE_LIMIT_SOCKET": "100000/second"})
    app_b, url_b = serve({"RATE_LIMIT_SOCKET": "100000/second"})
    ada = person(app_a, url_a)
    rooms = [ada.call("create_room", {"name": f"r{i}"})["room"]["id"] for i in range(3)]
    senders = [person(app_b, url_b) for _ in rooms]
    for sender, room_id in zip(senders, rooms, strict=True):
        sender.call("join_room", {"room_id": room_id})
    with raw_member(url_a, ada.tokens["access_token"]) as raw, ExitStack():
        for n, room_id in enumerate(rooms, start=1):
            raw.call(n, "join_room", {"room_id": room_id})
        threads = [
            threading.Thread(target=lambda s=s, r=r: [send(s, r, str(i)) for i in range(20)])
            for s, r in zip(senders, rooms, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        per_room: dict[str, list[int]] = {room_id: [] for room_id in rooms}
        deadline = time.monotonic() + 20
        while sum(map(len, per_room.values())) < 60 and time.monotonic() < deadline:
            for frame in raw.receive(0.5):
                kind, name, data = parse(frame)
                if kind == "event" and name == "message":
                    per_room[data["room_id"]].append(data["seq"])
    assert all(seqs == list(range(1, 21)) for seqs in per_room.values()), per_room
