"""The library internals the direct room frames rely on (``core/managers/websocket/
frames.py``), pinned: a new python-engineio, python-socketio, simple-websocket, wsproto or
gevent that changes one of them fails here, before a fan-out writes a frame where it must
not. Their behaviour under gunicorn is ``tests/production/test_room_frames.py``."""

from __future__ import annotations

import _socket
import inspect
import json

import engineio
import gevent.socket
import gevent.ssl
import simple_websocket
import socketio
from engineio import packet as eio_packet
from engineio.async_drivers._websocket_wsgi import SimpleWebSocketWSGI
from engineio.socket import Socket
from socketio import packet as sio_packet
from wsproto.connection import Connection, ConnectionType
from wsproto.events import TextMessage

from core.managers.websocket.frames import (
    DirectFrames,
    Writer,
    os_socket,
    served_websocket,
    text_frame,
)


def test_engineio_sockets_have_what_a_direct_write_checks() -> None:
    server = engineio.Server(async_mode="gevent")
    socket = Socket(server, "sid")
    assert (socket.closed, socket.closing, socket.upgraded, socket.upgrading) == (
        False,
        False,
        False,
        False,
    )
    assert socket.queue.empty()
    assert socket.check_ping_timeout() is True
    # The websocket handler is a bound method of the socket, given the wrapper whose send
    # its writer calls; its send goes through the queue (what a direct write stands in for).
    source = inspect.getsource(Socket)
    assert "def _websocket_handler(self, ws):" in source
    # built with the bound handler: frames reads its socket from it (handler.__self__)
    assert "self._websocket_handler, self.server)" in source
    assert "ws.send(pkt.encode())" in source  # its writer
    assert "self.queue.put(pkt)" in inspect.getsource(Socket.send)


def test_only_gevent_writes_directly_and_every_websocket_gets_the_whole_frame_writer() -> None:
    for mode, direct in (("gevent", True), ("threading", False)):
        server = engineio.Server(async_mode=mode)
        assert DirectFrames().install(server) is direct
        websocket = served_websocket(server)
        assert issubclass(websocket, Writer)
        assert issubclass(websocket, SimpleWebSocketWSGI)


def test_simple_websocket_and_gevent_expose_the_socket_and_frame_layer() -> None:
    source = inspect.getsource(simple_websocket.ws.Base.__init__)
    assert "self.sock = sock" in source
    assert "self.connected = False" in source
    assert "self.ws = " in source
    # The library's send is one sock.send (the reason Writer writes with sendall).
    assert "self.sock.send(out_data)" in inspect.getsource(simple_websocket.ws.Base.send)
    sock = gevent.socket.socket()
    try:
        raw = os_socket(sock)
        assert isinstance(raw, _socket.socket)
        assert raw.gettimeout() == 0.0  # non-blocking: a direct write never waits
        # a TLS socket (gevent's, as gunicorn wraps one given a certificate) has an OS socket
        # too, but one that carries records: no direct write
        tls = gevent.ssl.SSLContext(gevent.ssl.PROTOCOL_TLS_CLIENT).wrap_socket(
            gevent.socket.socket(), server_hostname="localhost", do_handshake_on_connect=False
        )
        try:
            assert getattr(tls, "_sock", None) is not None
            assert os_socket(tls) is None
        finally:
            tls.close()
    finally:
        sock.close()


def test_the_direct_frame_is_the_packet_the_library_would_queue() -> None:
    data = {"seq": 7, "body": "héllo"}
    server = socketio.Server()
    encoded = server.packet_class(sio_packet.EVENT, namespace="/", data=["message", data]).encode()
    frame = text_frame(eio_packet.Packet(eio_packet.MESSAGE, encoded).encode())
    client = Connection(ConnectionType.CLIENT)
    client.receive_data(frame)
    (event,) = list(client.events())
    assert isinstance(event, TextMessage)
    assert event.message_finished
    assert event.data == '42["message",' + json.dumps(data, separators=(",", ":")) + "]"
    # python-socketio's room emit without a callback: one packet for every member.
    source = inspect.getsource(socketio.Manager.emit)
    assert "self.server._send_eio_packet(eio_sid, p)" in source
