"""The room log's local delivery (core/managers/websocket/delivery.py) without servers: what
a socket's disconnect handler may do while a message is being sent."""

from __future__ import annotations

import threading
from typing import Any

from core.managers.websocket.delivery import Delivery


def test_a_socket_closed_while_a_message_is_sent_to_it_is_forgotten_without_a_deadlock() -> None:
    """Sending to a client that stopped answering pings closes its socket on the spot, and
    the disconnect handler (which forgets the socket) runs in the sending task."""
    delivery = Delivery(send=lambda sid, event, data: None)
    delivery.hold("held", "room")
    sent: list[dict[str, Any]] = []

    def emit(message: dict[str, Any]) -> None:
        sent.append(message)
        delivery.forget("gone")  # the disconnect handler of a socket in the room

    message = {"room": "room", "event": "message", "data": [{"seq": 1}], "skip_sid": None}
    worker = threading.Thread(target=delivery.dispatch, args=(message, emit), daemon=True)
    worker.start()
    worker.join(5)
    assert not worker.is_alive(), "dispatch deadlocked on its own lock"
    assert sent[0]["skip_sid"] == ["held"]  # the joining socket waits for its ack


def test_held_messages_go_out_after_the_ack_above_its_seq_only() -> None:
    out: list[tuple[str, str, dict[str, Any]]] = []
    delivery = Delivery(send=lambda sid, event, data: out.append((sid, event, data)))
    delivery.hold("s1", "room")
    for seq in (4, 5, 6):
        delivery.dispatch(
            {"room": "room", "event": "message", "data": [{"seq": seq}], "skip_sid": None},
            lambda message: None,
        )
    delivery.release("s1", "room", after_seq=5)  # the ack said seq 5 (missed up to 5)
    assert out == [("s1", "message", {"seq": 6})]
    emitted: list[dict[str, Any]] = []
    delivery.dispatch(
        {"room": "room", "event": "message", "data": [{"seq": 7}], "skip_sid": None},
        emitted.append,
    )
    assert emitted[0]["skip_sid"] is None  # live again
