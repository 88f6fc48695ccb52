"""Socket.IO garbage: the server answers with error acks or drops only the offending client,
and stays healthy (``/health/ready`` 200, a well-behaved client keeps working, no socket
session or presence is left behind).

Extends tests/websocket/test_robustness.py (join_room with wrong types, one oversized
send_message, a connect without a token): wrong types for *every* event, oversized packets
of other kinds and before authentication, raw frames that are not Socket.IO at all (sent by a
plain websocket-client connection to ``/socket.io/?EIO=4&transport=websocket``), events and
bad ``auth`` payloads before a connection is authenticated, and rapid connect/disconnect.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
import requests
from flask import Flask

from core.testing import AppFactory, Client, manager_of, serving
from modules.auth.testing import user_with_tokens
from tests.support.servers import wait_until
from tests.support.wire import RawSocket

MAX_BUFFER = 8192
SETTINGS = {
    "SOCKETIO_MAX_BUFFER": str(MAX_BUFFER),
    "SOCKETIO_PING_INTERVAL": "0.5",
    "SOCKETIO_PING_TIMEOUT": "1",
    "SOCKETIO_SWEEP_INTERVAL": "0.2",
    # Garbage counts against the per-user event limit too; a limit would only hide it.
    "RATE_LIMIT_SOCKET": "100000/second",
    # Hundreds of short-lived raw sockets of one user; the cap has its own tests.
    "SOCKETIO_MAX_SOCKETS_PER_USER": "100000",
}
EVENTS = (
    "create_room",
    "join_room",
    "leave_room",
    "send_message",
    "list_rooms",
    "room_members",
    "close_room",
    "room_history",
    "refresh_session",
)
#: What a client may be told about its own garbage (never INTERNAL_ERROR).
CLIENT_ERRORS = frozenset({"VALIDATION_ERROR", "NOT_FOUND", "FORBIDDEN", "NOT_IN_ROOM"})
#: Not an object at all: every event answers VALIDATION_ERROR.
NOT_OBJECTS: list[Any] = [None, 0, -1, 1.5, True, "", "text", [], [1, "a"], b"\x00\xff"]
#: Objects with wrong types or sizes in the fields the events read.
BAD_FIELDS: list[dict[str, Any]] = [
    {},
    {"room_id": None},
    {"room_id": 12},
    {"room_id": ["a"]},
    {"room_id": {"$gt": ""}},
    {"room_id": ""},
    {"room_id": "x" * 65},
    {"room_id": b"raw-bytes"},
    {"room_id": "no-such-room"},
    {"name": None},
    {"name": 5},
    {"name": " "},
    {"name": "x" * 65},
    {"name": {"nested": True}},
    {"name": "ok", "private": "yes"},
    {"name": "ok", "members": "abc"},
    {"name": "ok", "members": [1]},
    {"name": "ok", "members": [""]},
    {"name": "ok", "members": ["m"] * 101},
    {"room_id": "no-such-room", "body": 5},
    {"room_id": "no-such-room", "body": ""},
    {"room_id": "no-such-room", "body": "x" * 4097},
    {"room_id": "no-such-room", "body": b"bytes"},
    {"room_id": "no-such-room", "body": ["list"]},
]


class Stage:
    """A served app, a user with tokens, and a well-behaved client in a room."""

    def __init__(self, app: Flask, url: str, stack: ExitStack) -> None:
        self.app, self.url, self.stack = app, url, stack
        self.http = app.test_client()
        self.user, self.tokens = user_with_tokens(self.http)
        self.token = self.tokens["access_token"]
        self.good = self.client()
        self.room = self.good.call("create_room", {"name": "good"})["room"]

    def client(self, token: str | None = None) -> Client:
        client = Client()
        self.stack.callback(client.close)
        client.connect(self.url, token or self.token)
        return client

    def raw(self) -> RawSocket:
        raw = RawSocket(self.url)
        self.stack.callback(raw.close)
        return raw

    def other_token(self) -> str:
        return str(user_with_tokens(self.http)[1]["access_token"])

    def assert_healthy(self, expected_sockets: int = 1) -> None:
        """Readiness 200, the good client sends and receives, no session left behind."""
        assert requests.get(f"{self.url}/health/ready", timeout=10).status_code == 200
        assert self.good.sio.connected
        sent = self.good.call("send_message", {"room_id": self.room["id"], "body": "still here"})
        assert sent["ok"] is True, sent
        received = self.good.wait_for("message")
        assert received[-1]["body"] == "still here"
        websocket_manager = manager_of(self.app).websocket
        wait_until(
            lambda: websocket_manager.connected() == expected_sockets,
            timeout=5,
            what=f"{expected_sockets} connected socket(s), not {websocket_manager.connected()}",
        )
        members = self.good.call("room_members", {"room_id": self.room["id"]})["members"]
        assert [m["user_id"] for m in members] == [self.user["id"]], members


@pytest.fixture
def stage(make_app: AppFactory) -> Iterator[Callable[..., Stage]]:
    with ExitStack() as stack:

        def start(overrides: dict[str, str] | None = None) -> Stage:
            app = make_app({**SETTINGS, **(overrides or {})})
            url = stack.enter_context(serving(app))
            return Stage(app, url, stack)

        yield start


def error_code(answer: Any) -> str | None:
    """The error code of an error ack (checking its shape); None for ``{"ok": true}``."""
    assert isinstance(answer, dict), answer
    if answer.get("ok") is True:
        return None
    assert answer["ok"] is False, answer
    assert {"code", "message"} <= set(answer["error"]) <= {"code", "message", "errors"}, answer
    for error in answer["error"].get("errors", []):  # validation failures: each field
        assert set(error) == {"field", "message"}, answer
    assert isinstance(answer["error"]["message"], str), answer
    assert answer["error"]["message"], answer
    return str(answer["error"]["code"])


def test_wrong_types_for_every_event_are_error_acks(stage: Callable[..., Stage]) -> None:
    s = stage()
    sender = s.client(s.other_token())
    for event in EVENTS:
        for data in NOT_OBJECTS:
            assert error_code(sender.call(event, data)) == "VALIDATION_ERROR", (event, data)
        assert error_code(sender.sio.call(event, timeout=5)) == "VALIDATION_ERROR", event
        for data in BAD_FIELDS:
            code = error_code(sender.call(event, data))
            assert code is None or code in CLIENT_ERRORS, (event, data, code)
            if event == "list_rooms":  # it takes no fields: any is refused
                assert code == (None if data == {} else "VALIDATION_ERROR"), data
    # Extra arguments after the data are ignored.
    assert error_code(sender.sio.call("list_rooms", ({}, "extra", 3), timeout=5)) is None
    # Nothing the garbage did touched the good client's room.
    assert error_code(sender.call("join_room", {"room_id": s.room["id"]})) is None
    assert error_code(sender.call("close_room", {"room_id": s.room["id"]})) == "FORBIDDEN"
    sender.close()
    s.assert_healthy()


def test_lone_surrogates_in_event_data_are_validation_errors(stage: Callable[..., Stage]) -> None:
    """JSON may carry ``\\ud800`` (a lone UTF-16 surrogate): valid JSON text, but no
    character; it cannot be encoded as UTF-8, so it must be refused like any bad value, not
    crash the handler into INTERNAL_ERROR."""
    s = stage()
    raw = s.raw()
    assert raw.connect({"token": s.other_token()}).startswith("40")
    frames = {
        "create_room": {"name": "\ud800"},
        "join_room": {"room_id": "\ud800"},
        "send_message": {"room_id": s.room["id"], "body": "hi \udc00"},
        "room_members": {"room_id": "\udbff"},
    }
    # json.dumps escapes each surrogate as \ud800, exactly what a client would send.
    codes = {
        event: error_code(raw.call(ack_id, event, data))
        for ack_id, (event, data) in enumerate(frames.items())
    }
    assert codes == dict.fromkeys(frames, "VALIDATION_ERROR")
    raw.close()
    s.assert_healthy()


def test_oversized_packets_drop_only_their_sender(stage: Callable[..., Stage]) -> None:
    s = stage()
    huge = "x" * (MAX_BUFFER * 3)
    # An authenticated client: an oversized binary attachment, an oversized unknown event.
    for emit in (
        lambda c: c.sio.emit("send_message", {"room_id": s.room["id"], "body": huge.encode()}),
        lambda c: c.sio.emit("no_such_event", {"blob": huge}),
    ):
        offender = s.client(s.other_token())
        emit(offender)
        assert offender.disconnected.wait(5)
    # Before any authentication: an oversized connect packet, an oversized frame of garbage.
    raws = []
    for frame in ("40" + json.dumps({"token": huge}), huge, huge.encode()):
        raw = s.raw()
        raw.send(frame)
        raws.append(raw)
    for raw in raws:
        raw.receive(5.0)
        assert raw.closed
    s.assert_healthy()


#: A binary event whose placeholder points past its one attachment. python-socketio 5.18
#: (socketio/packet.py ``add_attachment``) raises while rebuilding it and keeps the packet
#: pending, so that connection takes every later frame as one more attachment and never
#: answers again: it is wedged, not dropped (an upstream issue; only the offender is hit).
WEDGING = '451-["send_message",{"_placeholder":true,"num":7}]'
RAW_GARBAGE: list[str | bytes] = [
    "hello",
    "",
    "4",
    "42[",
    "9999",
    "5",  # an Engine.IO upgrade on a websocket that already is one
    "42[123,{}]",
    "42[null]",
    "42[]",
    "421[]",
    "42{}",
    "43",
    "430[1]",
    '42["list_rooms",{}',
    '42/nope,0["list_rooms",{}]',
    # A binary event header: the next frame is taken as its attachment.
    '451-["send_message",{"_placeholder":true,"num":0}]',
    WEDGING,
    "4" + "[" * 5000 + "]" * 5000,
    '42["list_rooms",' + "[" * 5000 + "]" * 5000 + "]",
    b"\x00\xff\xfe",
    b"4" + bytes(range(256)),
]


@pytest.mark.parametrize("authenticated", [False, True], ids=["anonymous", "authenticated"])
def test_raw_garbage_frames_are_ignored_or_drop_that_connection(
    stage: Callable[..., Stage], authenticated: bool
) -> None:
    """Each frame on its own connection: nothing is ever acknowledged to garbage, and
    afterwards the connection either still answers a valid event (when it was authenticated)
    or was closed by the server; nobody else notices."""
    s = stage()
    token = s.other_token()
    raws = {}
    for frame in RAW_GARBAGE:
        raw = s.raw()
        if authenticated:
            assert raw.connect({"token": token}).startswith("40")
        raw.send(frame)
        raws[frame] = raw
    time.sleep(0.3)  # let the server act on every frame
    for frame, raw in raws.items():
        answers = raw.receive(0.05)
        label = repr(frame[:40])
        assert not any(a.startswith("43") for a in answers), (label, answers)
        if raw.closed or not authenticated or frame == WEDGING:
            raw.close()
            continue
        # A binary packet header makes the server take the next frame as its attachment.
        answer = raw.call(98, "list_rooms", {}, wait=1.0) or raw.call(99, "list_rooms", {})
        assert answer is not None or raw.closed, (label, "neither answered nor dropped")
        if answer is not None:
            assert answer["ok"] is True, (label, answer)
        raw.close()
    s.assert_healthy()


def test_events_before_authentication_are_never_run(stage: Callable[..., Stage]) -> None:
    s = stage()
    raws = []
    # No Socket.IO connect at all, then connects refused for bad auth payloads.
    for auth in (
        None,
        {"token": 123},
        {"token": ""},
        {"token": None},
        {"token": ["a"]},
        {"token": "not-a-jwt"},
        {"token": s.tokens["refresh_token"]},
        [s.token],
        s.token,
    ):
        raw = s.raw()
        if auth is not None:
            refused = raw.connect(auth)
            assert refused.startswith("44"), (auth, refused)
            error = json.loads(refused[2:])
            # {code, message} at the top (python-socketio) and under data (socket.io-client).
            assert set(error) == {"code", "message", "data"}, error
            assert error["data"] == {"code": error["code"], "message": error["message"]}, error
            assert error["code"] in ("AUTH_REQUIRED", "TOKEN_INVALID"), (auth, error)
        for ack_id, event in enumerate(("create_room", "list_rooms", "join_room")):
            data = {"name": "sneaky"} if event == "create_room" else {"room_id": s.room["id"]}
            raw.send(f"42{ack_id}" + json.dumps([event, data]))
        raws.append((auth, raw))
    time.sleep(0.3)  # let the server act on every event
    for auth, raw in raws:
        answers = raw.receive(0.05)
        assert not any(a.startswith("43") for a in answers), (auth, answers)
        raw.close()
    names = [room["name"] for room in s.good.call("list_rooms", {})["rooms"]]
    assert "sneaky" not in names
    s.assert_healthy()


def test_rapid_connect_disconnect_leaves_no_session_or_presence(
    stage: Callable[..., Stage],
) -> None:
    s = stage()
    token = s.other_token()

    def churn(rounds: int) -> None:
        for n in range(rounds):
            client = Client()
            client.connect(s.url, token)
            if n % 2 == 0:
                client.call("join_room", {"room_id": s.room["id"]})
            client.close()
            raw = RawSocket(s.url)
            if n % 3 == 0:
                raw.connect({"token": token})
                raw.send('42["join_room",' + json.dumps({"room_id": s.room["id"]}) + "]")
            raw.ws.shutdown()  # vanish without a close frame

    threads = [threading.Thread(target=churn, args=(8,)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)

    # Vanished sockets are dropped after the ping timeout; their presence goes with them.
    s.assert_healthy()
    newcomer = s.client(s.other_token())
    assert error_code(newcomer.call("join_room", {"room_id": s.room["id"]})) is None
    newcomer.close()
