"""Two app instances sharing Redis: messages, presence, logout and crashes across instances."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
import socketio
from redis import Redis

from core.devstack import RedisServer
from core.managers.websocket import manager as websocket_manager
from core.testing import Client, bearer, manager_of
from modules.auth.testing import user_with_tokens
from tests.support.servers import stopped, wait_until
from tests.websocket.conftest import Person

Serve = Callable[..., tuple[Any, str]]
MakePerson = Callable[[Any, str], Person]


def test_a_message_sent_on_one_instance_reaches_a_member_on_another(
    serve: Serve, person: MakePerson
) -> None:
    app_a, url_a = serve()
    app_b, url_b = serve()
    ada, bob = person(app_a, url_a), person(app_b, url_b)
    room = ada.call("create_room", {"name": "across"})["room"]
    assert bob.call("join_room", {"room_id": room["id"]})["ok"] is True
    assert ada.socket.wait_for("user_joined")[0]["user"]["user_id"] == bob.id

    sent = ada.call("send_message", {"room_id": room["id"], "body": "over the queue"})["message"]
    assert bob.socket.wait_for("message") == [sent]

    # room_members on A lists the member connected to B, and the other way round.
    members_a = {m["user_id"] for m in ada.call("room_members", {"room_id": room["id"]})["members"]}
    members_b = {m["user_id"] for m in bob.call("room_members", {"room_id": room["id"]})["members"]}
    assert members_a == members_b == {ada.id, bob.id}


def test_logout_over_http_disconnects_the_users_sockets_on_every_instance(
    serve: Serve, person: MakePerson
) -> None:
    app_a, url_a = serve()
    _app_b, url_b = serve()
    ada = person(app_a, url_a)
    other_login = Client()
    try:
        other_login.connect(url_b, ada.tokens["access_token"])  # same login, instance B
        response = app_a.test_client().post(
            "/userauth/logout", headers=bearer(ada.tokens["access_token"])
        )
        assert response.status_code == 204
        assert ada.socket.disconnected.wait(3)
        assert other_login.disconnected.wait(3)
        # Each socket was told why before it was dropped: log in again.
        ended = {"code": "TOKEN_REVOKED", "message": "The token has been revoked."}
        assert ada.socket.wait_for("session_ended") == [ended]
        assert other_login.wait_for("session_ended") == [ended]
    finally:
        other_login.close()


def test_a_socket_is_disconnected_when_its_token_expires(serve: Serve, person: MakePerson) -> None:
    app, url = serve({"JWT_ACCESS_TTL": "2"})
    ada = person(app, url)
    websocket = manager_of(app).websocket
    session = websocket.sessions[next(iter(websocket.sessions))]
    assert session.claims["exp"] - time.time() <= 2
    assert ada.call("list_rooms", {})["ok"] is True  # alive while the token is
    assert ada.socket.disconnected.wait(4)
    # Told why first: refresh and reconnect.
    [ended] = ada.socket.wait_for("session_ended")
    assert ended == {"code": "TOKEN_EXPIRED", "message": "The token has expired."}


def test_presence_is_cleaned_when_a_client_drops_without_disconnecting(
    serve: Serve, person: MakePerson
) -> None:
    app, url = serve()
    ada, bob = person(app, url), person(app, url)
    room = ada.call("create_room", {"name": "drop"})["room"]
    bob.call("join_room", {"room_id": room["id"]})

    # Kill bob's transport without a Socket.IO or Engine.IO goodbye, like a lost network.
    bob.socket.sio.eio.ws.sock.close()
    left = ada.socket.wait_for("user_left", timeout=6)
    assert left[0]["user"]["user_id"] == bob.id
    members = ada.call("room_members", {"room_id": room["id"]})["members"]
    assert [m["user_id"] for m in members] == [ada.id]


def test_presence_of_a_crashed_instance_is_cleaned_by_a_live_one(
    serve: Serve, person: MakePerson
) -> None:
    app_a, url_a = serve({"SOCKETIO_PRESENCE_TTL": "1"})
    app_b, url_b = serve({"SOCKETIO_PRESENCE_TTL": "1"})
    ada, bob = person(app_a, url_a), person(app_b, url_b)
    room = ada.call("create_room", {"name": "crash"})["room"]
    bob.call("join_room", {"room_id": room["id"]})

    # Instance B "crashes": its heartbeat stops and nothing of it runs any more.
    # Its sessions are forgotten first, so closing it leaves their presence behind.
    manager_b = manager_of(app_b).websocket
    manager_b.sessions.clear()
    manager_b.close()
    reaper = manager_of(app_a).websocket

    def bob_present() -> bool:
        reaper.reap_dead_instances()
        return any(m["user_id"] == bob.id for m in reaper.rooms.members(room["id"]))

    wait_until(lambda: not bob_present(), 5)
    assert ada.socket.wait_for("user_left")[0]["user"]["user_id"] == bob.id
    members = ada.call("room_members", {"room_id": room["id"]})["members"]
    assert [m["user_id"] for m in members] == [ada.id]


def test_an_instance_taken_for_dead_records_its_sockets_again(
    serve: Serve, person: MakePerson
) -> None:
    """A slow instance (heartbeats late under load) is reaped like a dead one; its next
    heartbeat finds it unlisted and records its live sockets' presence again."""
    app_a, url_a = serve({"SOCKETIO_PRESENCE_TTL": "600"})  # beats only when called here
    app_b, url_b = serve({"SOCKETIO_PRESENCE_TTL": "600"})
    ada, bob = person(app_a, url_a), person(app_b, url_b)
    room = ada.call("create_room", {"name": "slow"})["room"]
    bob.call("join_room", {"room_id": room["id"]})
    manager_a = manager_of(app_a).websocket
    manager_b = manager_of(app_b).websocket
    manager_b.redis.client.delete(
        manager_b.redis.key("ws", "instance", manager_b.instance, "alive")
    )
    assert manager_a.reap_dead_instances() == 1  # bob's socket, taken for dead
    assert [m["user_id"] for m in manager_a.rooms.members(room["id"])] == [ada.id]
    assert bob.call("send_message", {"room_id": room["id"], "body": "?"})["error"]["code"] == (
        "NOT_IN_ROOM"
    )

    manager_b.heartbeat()  # B is alive after all
    members = {m["user_id"] for m in ada.call("room_members", {"room_id": room["id"]})["members"]}
    assert members == {ada.id, bob.id}
    assert bob.call("send_message", {"room_id": room["id"], "body": "back"})["ok"] is True
    assert manager_a.reap_dead_instances() == 0


def test_the_heartbeat_and_the_sweep_outlive_an_error_redis_answers(
    serve: Serve, person: MakePerson, redis_server: RedisServer
) -> None:
    """An error Redis answers that is no outage (an ACL refusing a command) fails a beat or a
    sweep, not the thread: once Redis takes the commands again, the instance is alive again
    and a revoked token still drops its socket."""
    app, url = serve({"SOCKETIO_PRESENCE_TTL": "1"})  # a beat every 1/6 s, alive for 2/3 s
    ada = person(app, url)
    manager = manager_of(app).websocket
    alive = manager.redis.key("ws", "instance", manager.instance, "alive")
    admin = Redis.from_url(redis_server.url)
    admin.acl_setuser("default", enabled=True, commands=["-set", "-exists"])
    try:
        # No beat can mark it alive, no sweep can read a revocation: both keep failing.
        wait_until(lambda: admin.pttl(alive) == -2, what="beats refused", timeout=15)
    finally:
        admin.acl_setuser("default", enabled=True, commands=["+set", "+exists"])
    wait_until(lambda: admin.pttl(alive) > 0, what="beating again", timeout=15)
    response = app.test_client().post(
        "/userauth/logout", headers=bearer(ada.tokens["access_token"])
    )
    assert response.status_code == 204
    assert ada.socket.disconnected.wait(15)  # the sweep runs again


def hears_the_queue_again(member: Person, room_id: str) -> None:
    """Once Redis is back, until ``member``'s instance is subscribed to the message queue
    again (python-socketio retries with a growing pause): its own message comes back to it.
    An event published before then is lost to that instance, as any emit is."""
    for _ in range(30):
        member.call("send_message", {"room_id": room_id, "body": "anyone?"})
        with contextlib.suppress(AssertionError):
            member.socket.wait_for("message", timeout=1)
            return
    raise AssertionError("the message queue never came back")


def test_a_disconnect_while_redis_is_down_is_settled_once_it_answers(
    serve: Serve, person: MakePerson, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Bob's socket closes while Redis is down, so its instance cannot remove his presence
    then: it owes it, and once Redis answers again its next heartbeat removes it. The room
    hears that he left, and every member list, on either instance, is true again."""
    app_a, url_a = serve({"SOCKETIO_PRESENCE_TTL": "600"})  # beats only when called here
    app_b, url_b = serve({"SOCKETIO_PRESENCE_TTL": "600"})
    ada, bob = person(app_a, url_a), person(app_b, url_b)
    room = ada.call("create_room", {"name": "outage"})["room"]
    assert bob.call("join_room", {"room_id": room["id"]})["ok"] is True
    [joined] = ada.socket.wait_for("user_joined")
    assert joined["user"]["user_id"] == bob.id
    manager_b = manager_of(app_b).websocket

    with stopped(redis_server):
        bob.socket.close()
        # B tried to remove bob's presence, and could not.
        wait_until(
            lambda: any("presence not cleaned" in r.getMessage() for r in caplog.records),
            what="bob's disconnect handled",
        )
        assert not manager_b.sessions

    hears_the_queue_again(ada, room["id"])
    members = ada.call("room_members", {"room_id": room["id"]})
    assert {m["user_id"] for m in members["members"]} == {ada.id, bob.id}  # owed, not settled
    manager_b.heartbeat()  # B's next beat
    [left] = ada.socket.wait_for("user_left")
    assert left == {"room_id": room["id"], "user": joined["user"]}
    members = ada.call("room_members", {"room_id": room["id"]})
    assert [m["user_id"] for m in members["members"]] == [ada.id]
    assert members["member_count"] == 1
    # A newcomer on bob's instance is told the same.
    cid = person(app_b, url_b)
    ack = cid.call("join_room", {"room_id": room["id"]})
    assert {m["user_id"] for m in ack["members"]} == {ada.id, cid.id}
    assert ack["member_count"] == 2
    # Nothing of bob's socket is left to count against him either.
    admin = Redis.from_url(redis_server.url)
    assert admin.scard(manager_b.redis.key("ws", "user", bob.id, "sids")) == 0


def test_a_socket_that_disconnects_while_its_instance_restores_presence_stays_gone(
    serve: Serve, person: MakePerson, monkeypatch: pytest.MonkeyPatch
) -> None:
    """B was taken for dead and records its sockets again; bob's socket disconnects while B
    writes his, after his disconnect found nothing to remove. No hook pauses the restore, so
    the test disconnects bob from inside the call that writes his presence (the real one, to
    the real Redis, runs right after); B checks after its write and removes him again."""
    app_a, url_a = serve({"SOCKETIO_PRESENCE_TTL": "600"})  # beats only when called here
    app_b, url_b = serve({"SOCKETIO_PRESENCE_TTL": "600"})
    ada, bob, cid = person(app_a, url_a), person(app_b, url_b), person(app_b, url_b)
    room = ada.call("create_room", {"name": "restore"})["room"]
    assert bob.call("join_room", {"room_id": room["id"]})["ok"] is True
    assert cid.call("join_room", {"room_id": room["id"]})["ok"] is True
    manager_a = manager_of(app_a).websocket
    manager_b = manager_of(app_b).websocket
    [bob_sid] = [s.sid for s in manager_b.sessions.values() if s.user_id == bob.id]
    manager_b.redis.client.delete(
        manager_b.redis.key("ws", "instance", manager_b.instance, "alive")
    )
    assert manager_a.reap_dead_instances() == 2  # bob's and cid's sockets, taken for dead

    restore = manager_b.rooms.restore_socket

    def disconnecting_first(sid: str, *args: Any) -> Any:
        if sid == bob_sid:
            bob.socket.close()
            # B's disconnect handler ran (found nothing to remove) and the socket left its
            # rooms here.
            wait_until(
                lambda: (
                    bob_sid not in manager_b.sessions
                    and not manager_b.socketio.server.rooms(bob_sid, namespace="/")
                ),
                what="bob's disconnect handled",
            )
        return restore(sid, *args)

    monkeypatch.setattr(manager_b.rooms, "restore_socket", disconnecting_first)
    manager_b.heartbeat()  # B is alive after all: cid is back, bob is not
    monkeypatch.undo()

    members = ada.call("room_members", {"room_id": room["id"]})
    assert {m["user_id"] for m in members["members"]} == {ada.id, cid.id}
    assert members["member_count"] == 2
    assert manager_a.reap_dead_instances() == 0
    assert not manager_b.rooms.is_in(room["id"], bob_sid)


def lose_answer(monkeypatch: pytest.MonkeyPatch, store: Any, method: str) -> None:
    """``store.method`` runs in Redis, then its answer is lost (a read timeout after the
    write): the caller sees DEPENDENCY_UNAVAILABLE for a write that happened."""
    write = getattr(store, method)

    def answer_lost(*args: Any) -> Any:
        write(*args)
        raise redis.TimeoutError("Timeout reading from socket")

    monkeypatch.setattr(store, method, answer_lost)


def test_a_join_whose_answer_redis_lost_leaves_no_member_behind(
    serve: Serve, person: MakePerson, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis runs the join's script but its answer never comes (a timeout after the write):
    the ack says DEPENDENCY_UNAVAILABLE, so the socket is not in the room here, and the
    instance's next heartbeat takes it out of Redis too."""
    app, url = serve({"SOCKETIO_PRESENCE_TTL": "600"})  # beats only when called here
    ada, bob = person(app, url), person(app, url)
    room = ada.call("create_room", {"name": "lost join"})["room"]
    manager = manager_of(app).websocket
    lose_answer(monkeypatch, manager.rooms, "enter")
    ack = bob.call("join_room", {"room_id": room["id"]})
    monkeypatch.undo()
    assert ack["ok"] is False
    assert ack["error"]["code"] == "DEPENDENCY_UNAVAILABLE"

    manager.heartbeat()
    members = ada.call("room_members", {"room_id": room["id"]})
    assert [m["user_id"] for m in members["members"]] == [ada.id]
    assert members["member_count"] == 1
    sent = bob.call("send_message", {"room_id": room["id"], "body": "am I in?"})
    assert sent["error"]["code"] == "NOT_IN_ROOM"
    # Joining again works as a first join: the room hears it.
    assert bob.call("join_room", {"room_id": room["id"]})["ok"] is True
    assert [e["user"]["user_id"] for e in ada.socket.wait_for("user_joined")] == [bob.id]


def test_a_connect_whose_registration_answer_redis_lost_holds_no_socket_of_the_user(
    serve: Serve, socket_clients: Callable[[], Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis records a connecting socket but its answer never comes: the connect is refused
    (DEPENDENCY_UNAVAILABLE) and the next heartbeat removes the record, so it does not count
    against the user's cap of one socket."""
    app, url = serve({"SOCKETIO_PRESENCE_TTL": "600", "SOCKETIO_MAX_SOCKETS_PER_USER": "1"})
    _, tokens = user_with_tokens(app.test_client())
    manager = manager_of(app).websocket
    lose_answer(monkeypatch, manager.rooms, "register_socket")
    refused = socket_clients()
    with pytest.raises(socketio.exceptions.ConnectionError):
        refused.connect(url, tokens["access_token"])
    monkeypatch.undo()
    assert refused.connect_error["code"] == "DEPENDENCY_UNAVAILABLE"

    manager.heartbeat()
    again = socket_clients()
    again.connect(url, tokens["access_token"])  # not TOO_MANY_SOCKETS
    assert again.call("list_rooms", {})["ok"] is True


def test_a_leave_whose_answer_redis_lost_leaves_the_socket_in_the_room(
    serve: Serve, person: MakePerson, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis runs the leave's script but its answer never comes: the ack says
    DEPENDENCY_UNAVAILABLE, so the socket is still in the room, and the next heartbeat records
    it there again: listed, and able to send to it."""
    app, url = serve({"SOCKETIO_PRESENCE_TTL": "600"})  # beats only when called here
    ada, bob = person(app, url), person(app, url)
    room = ada.call("create_room", {"name": "lost leave"})["room"]
    assert bob.call("join_room", {"room_id": room["id"]})["ok"] is True
    manager = manager_of(app).websocket
    lose_answer(monkeypatch, manager.rooms, "leave")
    ack = bob.call("leave_room", {"room_id": room["id"]})
    monkeypatch.undo()
    assert ack["ok"] is False
    assert ack["error"]["code"] == "DEPENDENCY_UNAVAILABLE"

    manager.heartbeat()
    members = ada.call("room_members", {"room_id": room["id"]})
    assert {m["user_id"] for m in members["members"]} == {ada.id, bob.id}
    sent = bob.call("send_message", {"room_id": room["id"], "body": "still here"})
    assert sent["ok"] is True
    assert bob.socket.wait_for("message") == [sent["message"]]


def test_past_owed_max_the_oldest_debt_waits_for_its_instance_to_be_reaped(
    serve: Serve,
    person: MakePerson,
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The debt is bounded: with room for one, bob's (the older) is dropped when cid's comes,
    cid is settled once Redis answers and bob stays listed until B is taken for dead."""
    monkeypatch.setattr(websocket_manager, "OWED_MAX", 1)
    app_a, url_a = serve({"SOCKETIO_PRESENCE_TTL": "600"})  # beats only when called here
    app_b, url_b = serve({"SOCKETIO_PRESENCE_TTL": "600"})
    ada, bob, cid = person(app_a, url_a), person(app_b, url_b), person(app_b, url_b)
    room = ada.call("create_room", {"name": "bounded"})["room"]
    for member in (bob, cid):
        assert member.call("join_room", {"room_id": room["id"]})["ok"] is True
    manager_a = manager_of(app_a).websocket
    manager_b = manager_of(app_b).websocket

    def logged(text: str, count: int = 1) -> bool:
        return len([r for r in caplog.records if text in r.getMessage()]) >= count

    with stopped(redis_server):
        bob.socket.close()
        wait_until(lambda: logged("presence not cleaned"), what="bob's removal failed")
        cid.socket.close()
        wait_until(lambda: logged("presence not cleaned", 2), what="cid's removal failed")
        assert logged("socket presence debt dropped")

    hears_the_queue_again(ada, room["id"])
    manager_b.heartbeat()
    [left] = ada.socket.wait_for("user_left")
    assert left["user"]["user_id"] == cid.id
    members = ada.call("room_members", {"room_id": room["id"]})["members"]
    assert {m["user_id"] for m in members} == {ada.id, bob.id}

    # B is taken for dead (its heartbeat gone): A's reap removes what B could not.
    manager_b.close()
    manager_b.redis.client.delete(
        manager_b.redis.key("ws", "instance", manager_b.instance, "alive")
    )

    assert manager_a.reap_dead_instances() == 1
    members = ada.call("room_members", {"room_id": room["id"]})["members"]
    assert [m["user_id"] for m in members] == [ada.id]


def test_the_heartbeat_loop_settles_what_it_owes_by_itself(
    serve: Serve, person: MakePerson, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """No beat called here: B's own heartbeat thread settles bob's debt once Redis is back."""
    app_a, url_a = serve({"SOCKETIO_PRESENCE_TTL": "12"})  # a beat every 2 s, alive for 8 s
    app_b, url_b = serve({"SOCKETIO_PRESENCE_TTL": "12"})
    ada, bob = person(app_a, url_a), person(app_b, url_b)
    room = ada.call("create_room", {"name": "by itself"})["room"]
    assert bob.call("join_room", {"room_id": room["id"]})["ok"] is True
    with stopped(redis_server):
        bob.socket.close()
        wait_until(
            lambda: any("presence not cleaned" in r.getMessage() for r in caplog.records),
            what="bob's removal failed",
        )

    def members() -> set[str] | None:
        time.sleep(0.5)  # within the socket's rate limit
        ack = ada.call("room_members", {"room_id": room["id"]})
        if not ack["ok"]:  # Redis not answering yet
            return None
        return {m["user_id"] for m in ack["members"]}

    wait_until(lambda: members() == {ada.id}, what="bob settled", timeout=20)
    assert any("socket presence settled" in r.getMessage() for r in caplog.records)
