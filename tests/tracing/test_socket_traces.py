"""Socket.IO traced: a span per connect and per event, and a message fanned out to another
instance through Redis in the same trace as the event that sent it (two served apps sharing
Redis, each exporting to the OTLP receiver)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
import socketio
from flask import Flask

from core.app_manager import AppManager
from core.testing import AppFactory, Client, manager_of, serving
from tests.support.otlp import OtlpReceiver, Span
from tests.websocket.conftest import FAST, Person

Serve = Callable[[], tuple[Flask, str]]


@pytest.fixture
def serve_traced(make_app: AppFactory, receiver: OtlpReceiver) -> Iterator[Serve]:
    with ExitStack() as stack:

        def factory() -> tuple[Flask, str]:
            app = make_app({**FAST, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url})
            return app, stack.enter_context(serving(app))

        yield factory


def flush(*apps: Flask) -> None:
    for app in apps:
        manager: AppManager = manager_of(app)
        assert manager.tracing is not None
        assert manager.tracing.flush()


def one(spans: list[Span], name: str, **attributes: Any) -> Span:
    [found] = [s for s in spans if s.name == name and attributes.items() <= s.attributes.items()]
    return found


def test_connects_and_events_are_spans_with_their_outcome(
    serve_traced: Serve, receiver: OtlpReceiver, socket_clients: Callable[[], Client]
) -> None:
    app, url = serve_traced()
    ada = Person(app.test_client(), url, socket_clients)
    assert ada.call("list_rooms", {})["ok"] is True
    assert ada.call("join_room", {"room_id": "no-such-room"})["ok"] is False
    stranger = socket_clients()
    with pytest.raises(socketio.exceptions.ConnectionError):
        stranger.connect(url, "not-a-token")

    flush(app)
    spans = receiver.wait_for(lambda s: len([x for x in s if x.name == "socketio connect"]) >= 2)
    accepted = one(spans, "socketio connect", **{"enduser.kind": "user"})
    assert accepted.kind == "server"
    assert "error.type" not in accepted.attributes
    refused = one(spans, "socketio connect", **{"enduser.kind": "anonymous"})
    assert refused.attributes["error.type"] == "TOKEN_INVALID"
    listed = one(spans, "socketio list_rooms")
    assert listed.attributes["socketio.event"] == "list_rooms"
    assert "error.type" not in listed.attributes
    missing = one(spans, "socketio join_room")
    assert missing.attributes["error.type"] == "NOT_FOUND"
    text = repr([s.attributes for s in spans])
    assert ada.tokens["access_token"] not in text
    assert "not-a-token" not in text


def test_a_message_fanned_out_through_redis_is_one_trace_from_the_sender_to_each_delivery(
    serve_traced: Serve, receiver: OtlpReceiver, socket_clients: Callable[[], Client]
) -> None:
    app_a, url_a = serve_traced()
    app_b, url_b = serve_traced()
    ada = Person(app_a.test_client(), url_a, socket_clients)
    bob = Person(app_b.test_client(), url_b, socket_clients)
    room = ada.call("create_room", {"name": "traced"})["room"]
    assert bob.call("join_room", {"room_id": room["id"]})["ok"] is True
    body = "a body that is never an attribute"
    sent = ada.call("send_message", {"room_id": room["id"], "body": body})["message"]
    assert bob.socket.wait_for("message") == [sent]

    flush(app_a, app_b)
    delivered = "socketio deliver message"
    spans = receiver.wait_for(lambda s: len([x for x in s if x.name == delivered]) >= 2)
    event = one(spans, "socketio send_message")
    [publish] = [s for s in spans if s.name == "socketio publish message" and s.child_of(event)]
    assert publish.kind == "producer"
    deliveries = [s for s in spans if s.name == delivered and s.child_of(publish)]
    instances = {s.attributes["socketio.instance"] for s in deliveries}
    assert len(instances) == 2  # the sender's instance and the other one
    assert {s.kind for s in deliveries} == {"consumer"}
    assert body not in repr([s.attributes for s in spans])
