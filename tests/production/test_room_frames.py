"""Room messages written straight to the members' websockets (``core/managers/websocket/
frames.py``, gevent only) against gunicorn with the production worker: every member gets
every message once, whole and in ``seq`` order, when the direct write must give way to what
the socket's queue holds (a join's ack and the messages held back for it) and when a member
reads slowly (the kernel takes a frame in part, or nothing); and one slow member does not
hold up the room."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from wsproto.connection import Connection, ConnectionType
from wsproto.events import Ping, Pong, TextMessage

from core.testing import AppFactory, Client
from tests.production.helpers import Gunicorn, access_tokens

#: Socket events from one user as fast as the test sends them.
ENV = {"RATE_LIMIT_SOCKET": "100000/second", "RATE_LIMIT_USER": "100000/second"}


@pytest.fixture
def served(app_env: dict[str, str], tmp_path: Path) -> Iterator[Gunicorn]:
    server = Gunicorn({**app_env, **ENV}, tmp_path / "gunicorn.log", ())
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


class RawSocket:
    """A Socket.IO client over a plain TCP socket with a small receive buffer, which reads
    only when told to: the member that stops reading."""

    def __init__(self, port: int, token: str) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(
            (
                "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101"), head
        self.ws = Connection(ConnectionType.CLIENT)
        self.texts: list[str] = []
        self.pongs: list[bytes] = []
        self._partial = ""
        assert self.next().startswith("0")  # Engine.IO open
        self.send("40" + json.dumps({"token": token}))
        assert self.next().startswith("40{")  # Socket.IO connected

    def send(self, text: str) -> None:
        self.sock.sendall(self.ws.send(TextMessage(data=text)))

    def next(self) -> str:
        """The next Engine.IO packet (answering pings on the way)."""
        while not self.texts:
            data = self.sock.recv(65536)
            assert data, "the server closed the connection"
            self.ws.receive_data(data)
            for event in self.ws.events():
                if isinstance(event, Pong):
                    self.pongs.append(bytes(event.payload))
                    continue
                assert isinstance(event, TextMessage), event
                self._partial += event.data
                if event.message_finished:
                    if self._partial == "2":
                        self.send("3")
                    else:
                        self.texts.append(self._partial)
                    self._partial = ""
        return self.texts.pop(0)

    def call(self, event: str, data: dict[str, Any]) -> Any:
        self.send("421" + json.dumps([event, data]))
        while True:
            text = self.next()
            if text.startswith("431"):
                return json.loads(text[3:])[0]

    def messages(self, count: int) -> list[dict[str, Any]]:
        """The next ``count`` room messages (other events skipped)."""
        found: list[dict[str, Any]] = []
        while len(found) < count:
            text = self.next()
            if text.startswith("42"):
                event, data = json.loads(text[2:])
                if event == "message":
                    found.append(data)
        return found

    def ping(self, payload: bytes) -> None:
        """A websocket Ping (not Engine.IO's): simple-websocket's reader answers it."""
        self.sock.sendall(self.ws.send(Ping(payload=payload)))

    def close(self) -> None:
        self.sock.close()


def seqs(client: Client) -> list[int]:
    return [data["seq"] for name, data in client.events if name == "message"]


def test_a_member_that_stops_reading_gets_every_message_whole_and_in_order_later(
    served: Gunicorn, make_app: AppFactory
) -> None:
    """Frames the kernel takes in part or not at all: the rest goes out before anything
    else, later messages queue behind, and the other members are not held up."""
    sender_token, reader_token, slow_token = access_tokens(make_app(start=False), 3, "frames")
    sender, reader = Client(), Client()
    slow = RawSocket(served.port, slow_token)
    try:
        sender.connect(served.url, sender_token)
        reader.connect(served.url, reader_token)
        room = sender.call("create_room", {"name": "slow"})["room"]["id"]
        assert reader.call("join_room", {"room_id": room})["ok"]
        assert slow.call("join_room", {"room_id": room})["ok"]

        # 6.4 MB: more than the server's send buffer (4 MB at most on Linux) and the slow
        # member's receive buffer hold, so its socket fills up on the way.
        body = "x" * 4000
        count = 1600
        for n in range(count):
            sender.sio.emit("send_message", {"room_id": room, "body": f"{n}:{body}"})
        # The slow member has read nothing since its join; the others have it all.
        reader.wait_for("message", count, timeout=60)
        assert seqs(reader) == list(range(1, count + 1))

        got = slow.messages(count)
        assert [m["seq"] for m in got] == list(range(1, count + 1))
        assert sorted(m["body"] for m in got) == sorted(f"{n}:{body}" for n in range(count))
    finally:
        slow.close()
        sender.close()
        reader.close()


def test_members_joining_while_messages_flow_get_their_ack_then_every_later_message(
    served: Gunicorn, make_app: AppFactory
) -> None:
    """A join's ack and the messages held back for it go through the socket's queue; the
    live messages written straight after them must not overtake them. Members on the
    websocket transport, and on long-polling upgraded to it."""
    tokens = access_tokens(make_app(start=False), 9, "joiners")
    sender, *members = clients = [Client() for _ in tokens]
    transports = [["websocket"], ["polling", "websocket"]]
    try:
        for n, (client, token) in enumerate(zip(clients, tokens, strict=True)):
            client.sio.connect(
                served.url, auth={"token": token}, transports=transports[n % 2], wait_timeout=5
            )
        room = sender.call("create_room", {"name": "flow"})["room"]["id"]
        count = 400
        sending = threading.Thread(
            target=lambda: [
                sender.sio.emit("send_message", {"room_id": room, "body": str(n)})
                for n in range(count)
            ],
            daemon=True,
        )
        sending.start()
        joined = []
        for member in members:
            joined.append(member.call("join_room", {"room_id": room}))
            time.sleep(0.02)
        sending.join(30)
        for member, ack in zip(members, joined, strict=True):
            assert ack["ok"], ack
            member.wait_for("message", count - ack["seq"], timeout=30)
            assert seqs(member) == list(range(ack["seq"] + 1, count + 1))
    finally:
        for client in clients:
            client.close()


def test_a_slow_member_that_pings_gets_its_pongs_whole_and_every_message(
    served: Gunicorn, make_app: AppFactory
) -> None:
    """While the server waits to write to a member that reads slowly, the member's websocket
    pings are answered by the socket's reader: its pong waits for the frame going out (two
    greenlets waiting to write on one socket killed the reader: no pong, and the connection
    held for good; a pong written inside a half-sent frame broke the stream)."""
    sender_token, slow_token = access_tokens(make_app(start=False), 2, "pings")
    sender = Client()
    slow = RawSocket(served.port, slow_token)
    try:
        sender.connect(served.url, sender_token)
        room = sender.call("create_room", {"name": "pings"})["room"]["id"]
        assert slow.call("join_room", {"room_id": room})["ok"]
        body = "x" * 4000
        count = 1600  # 6.4 MB: the slow member's socket fills up on the way
        for n in range(count):
            sender.sio.emit("send_message", {"room_id": room, "body": f"{n}:{body}"})
        assert sender.call("room_members", {"room_id": room})["ok"]  # all sent by now
        payloads = [f"ping-{n}".encode() for n in range(5)]
        for payload in payloads:
            slow.ping(payload)

        got = slow.messages(count)
        assert [m["seq"] for m in got] == list(range(1, count + 1))
        assert all(m["body"].endswith(body) for m in got)
        assert slow.call("room_members", {"room_id": room})["ok"]  # the reader is alive
        assert slow.pongs == payloads
    finally:
        slow.close()
        sender.close()
