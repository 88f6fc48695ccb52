"""The WebSocket handshake answered from the request the server parsed
(:mod:`core.managers.websocket.transport`), over a raw TCP connection to a served app: a
well-formed upgrade gets RFC 6455's answer with no extension (even when one is offered) and
then Engine.IO's open packet; a malformed one is not upgraded and gives its slot back."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
import simple_websocket
from wsproto.events import TextMessage

from core.managers.websocket.transport import _Frames, _Server
from core.testing import Client, manager_of
from modules.auth.testing import user_with_tokens
from tests.support.servers import wait_until

Serve = Callable[..., tuple[Any, str]]

#: The sample key of RFC 6455 (section 1.3) and the answer it must get.
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
UPGRADE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": KEY,
    "Sec-WebSocket-Version": "13",
}


def upgrade(url: str, headers: dict[str, str]) -> tuple[socket.socket, bytes, bytes]:
    """A raw Engine.IO websocket opening with ``headers``: the socket, the answer's head
    and what came after it so far."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    lines = ["GET /socket.io/?EIO=4&transport=websocket HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(4096)
        if not chunk:
            break
        received += chunk
    head, _, rest = received.partition(b"\r\n\r\n")
    return sock, head, rest


def first_frame(sock: socket.socket, received: bytes) -> tuple[int, bytes]:
    """(opcode, payload) of the first frame from the server (short, unmasked)."""
    while len(received) < 2 or len(received) < 2 + (received[1] & 0x7F):
        chunk = sock.recv(4096)
        assert chunk, "closed before a frame"
        received += chunk
    length = received[1] & 0x7F
    if length == 126:
        while len(received) < 4:
            received += sock.recv(4096)
        length = int.from_bytes(received[2:4], "big")
        while len(received) < 4 + length:
            received += sock.recv(4096)
        return received[0] & 0x0F, received[4 : 4 + length]
    return received[0] & 0x0F, received[2 : 2 + length]


def header(head: bytes, name: str) -> str | None:
    for line in head.decode("latin-1").split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


def test_an_upgrade_is_answered_per_rfc_6455_without_extensions(serve: Serve) -> None:
    app, url = serve()
    offered = {**UPGRADE, "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"}
    sock, head, rest = upgrade(url, offered)
    try:
        assert head.startswith(b"HTTP/1.1 101 "), head
        assert header(head, "Sec-WebSocket-Accept") == ACCEPT
        assert (header(head, "Upgrade") or "").lower() == "websocket"
        assert (header(head, "Connection") or "").lower() == "upgrade"
        assert header(head, "Sec-WebSocket-Extensions") is None  # the offer is declined
        opcode, payload = first_frame(sock, rest)
        assert opcode == 0x1  # text, uncompressed
        assert payload.startswith(b"0")  # Engine.IO's open packet
        assert json.loads(payload[1:])["sid"]
    finally:
        sock.close()
    door = manager_of(app).websocket.door
    wait_until(lambda: door.open_connections() == 0, timeout=30)


@pytest.mark.parametrize("key", ["x\rSet-Cookie: a=b", "x\nSet-Cookie: a=b", "x\x00y"])
def test_a_key_never_reaches_the_answer_but_through_its_hash(serve: Serve, key: str) -> None:
    """The threaded dev server lets control characters through in a header (gunicorn
    answers 400): nothing of the key is written as it came, and an upgrade's answer is
    RFC 6455's three headers alone."""
    _, url = serve()
    sock, head, _ = upgrade(url, {**UPGRADE, "Sec-WebSocket-Key": key})
    sock.close()
    assert head, "no answer"
    assert b"set-cookie" not in head.lower(), head
    assert b"\x00" not in head, head
    lines = head.split(b"\r\n")
    if lines[0].startswith(b"HTTP/1.1 101 "):
        names = sorted(line.partition(b":")[0].lower() for line in lines[1:])
        assert names == [b"connection", b"sec-websocket-accept", b"upgrade"], head


@pytest.mark.parametrize(
    "change",
    [
        {"Sec-WebSocket-Key": None},
        {"Sec-WebSocket-Version": "8"},
        {"Connection": "keep-alive"},
        {"Upgrade": "h2c"},
    ],
    ids=["no-key", "old-version", "no-connection-upgrade", "not-websocket"],
)
def test_a_malformed_upgrade_is_not_upgraded_and_gives_its_slot_back(
    serve: Serve, socket_clients: Callable[[], Client], change: dict[str, str | None]
) -> None:
    app, url = serve()
    headers = {**UPGRADE, **change}
    sock, head, _ = upgrade(url, {k: v for k, v in headers.items() if v is not None})
    sock.close()
    assert not head.startswith(b"HTTP/1.1 101"), head
    door = manager_of(app).websocket.door
    wait_until(lambda: door.open_connections() == 0, timeout=30)
    _, tokens = user_with_tokens(app.test_client())
    client = socket_clients()
    client.connect(url, tokens["access_token"])  # the server serves on
    assert client.sio.connected


def masked_frame(opcode: int, payload: bytes, *, fin: bool) -> bytes:
    """A client frame (masked, as RFC 6455 requires of a client)."""
    mask = b"\x01\x02\x03\x04"
    head = bytes([(0x80 if fin else 0) | opcode])
    if len(payload) < 126:
        head += bytes([0x80 | len(payload)])
    elif len(payload) < 1 << 16:
        head += bytes([0x80 | 126]) + len(payload).to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + len(payload).to_bytes(8, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def close_code(sock: socket.socket, received: bytes) -> int | None:
    """The code of the server's close frame (frames before it skipped), None if the
    connection ended without one."""
    while True:
        while len(received) < 2 or len(received) < 2 + (received[1] & 0x7F):
            chunk = sock.recv(4096)
            if not chunk:
                return None
            received += chunk
        opcode, payload = first_frame(sock, received)
        if opcode == 0x8:
            return int.from_bytes(payload[:2], "big")
        received = received[2 + (4 if received[1] & 0x7F == 126 else 0) + len(payload) :]


def test_a_message_over_the_buffer_limit_is_refused_while_it_comes(serve: Serve) -> None:
    """Engine.IO refuses a message longer than ``SOCKETIO_MAX_BUFFER`` only once it has
    all come; the WebSocket ends one as soon as it has come past the limit (1009), so a
    client (not yet connected, even) cannot have the worker hold a message without end."""
    app, url = serve({"SOCKETIO_MAX_BUFFER": "4096"})
    sock, head, rest = upgrade(url, UPGRADE)
    try:
        assert head.startswith(b"HTTP/1.1 101 "), head
        sock.sendall(masked_frame(0x1, b"4" + b"a" * 5000, fin=False))  # never finished
        assert close_code(sock, rest) == 1009  # MESSAGE_TOO_BIG
    finally:
        sock.close()
    door = manager_of(app).websocket.door
    wait_until(lambda: door.open_connections() == 0, timeout=30)


def test_a_plain_upgrade_builds_the_librarys_websocket_without_its_h11_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pin of ``transport._Server``, which does simple-websocket's ``__init__`` itself
    for a plain upgrade: the same attributes as the library's own instance (one it adds
    fails this), the same answer, the same frames; and no h11 connection."""
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/socket.io/",
        "QUERY_STRING": "EIO=4&transport=websocket",
        "HTTP_HOST": "example.test",
        "HTTP_CONNECTION": "Upgrade",
        "HTTP_UPGRADE": "websocket",
        "HTTP_SEC_WEBSOCKET_VERSION": "13",
        "HTTP_SEC_WEBSOCKET_KEY": KEY,
    }
    connections: list[Any] = []
    library_connection = simple_websocket.ws.WSConnection

    def counted(*args: Any) -> Any:
        connections.append(library_connection(*args))
        return connections[-1]

    monkeypatch.setattr(simple_websocket.ws, "WSConnection", counted)
    built = {}
    for kind in (simple_websocket.Server, _Server):
        ours, theirs = socket.socketpair()
        theirs.settimeout(10)
        try:
            ws = kind({**environ, "werkzeug.socket": ours}, max_message_size=1000)
            answer = theirs.recv(4096)
            frame = ws.ws.send(TextMessage(data="0{}"))
            built[kind] = (ws, answer, frame)
        finally:
            theirs.close()  # its reader thread ends
    (library, answer, frame), (served, our_answer, our_frame) = built.values()
    assert sorted(vars(served)) == sorted(vars(library))
    assert type(served.ws) is _Frames  # only wsproto's frame layer
    assert len(connections) == 1  # the library's; none built for ours (h11 and its handshake)
    for name in ("mode", "subprotocol", "subprotocols", "receive_bytes", "ping_interval"):
        assert getattr(served, name) == getattr(library, name), name
    for name in ("max_message_size", "is_server", "close_reason", "pong_received"):
        assert getattr(served, name) == getattr(library, name), name
    assert header(our_answer, "Sec-WebSocket-Accept") == header(answer, "Sec-WebSocket-Accept")
    assert header(our_answer, "Sec-WebSocket-Accept") == ACCEPT
    assert our_frame == frame
    assert served.thread.name.endswith("(simple_websocket.Base._thread)")
