"""A room message to many websockets: one frame, written straight to each member's socket.

python-socketio encodes a room's packet once, then hands it to every member's Engine.IO
socket: a check, a put on the socket's queue that wakes its writer greenlet, which takes it
off, encodes the Engine.IO packet again, has wsproto frame it and writes it. Measured, about
65 µs of worker CPU per member (issue 24), most of it that per-socket machinery. Here the
frame is built once and each member's socket gets it written at once, in the dispatching
task, with one non-blocking ``send``, **only when nothing can come before it** on that
socket:

- the socket is open, on the websocket transport and not upgrading (polling clients, and a
  socket in the middle of its upgrade, keep the library's path);
- its queue is empty (an earlier packet waits there: the new one goes behind it);
- its writer is not writing, nor waiting to write, nor is the rest of an earlier direct
  frame still going out (:class:`Writer` marks those moments; the writer's packets taken off
  the queue are written under that mark, without a yield between taking and marking).

Anything else goes the library's way, onto the queue, so no message overtakes an earlier one
on the same socket and no frame is written inside another. A write the kernel takes only in
part (a member that reads slowly) has its rest sent by a task of its own while the socket is
marked, so the room's other members are not held up; a full socket buffer writes nothing and
the packet goes onto the queue. The ping-timeout check of the library's ``send`` is kept.

Only under gevent: there a greenlet runs until it yields, so "the queue is empty, the writer
is idle" and the write that follows are one step. With threads the writer could have taken a
packet off the queue and not yet started writing it; the threading mode (development and
tests) keeps the library's path for every packet.

Every websocket's wrapper, in both modes, is a :class:`Writer`: it writes each frame whole
(simple-websocket's own ``send`` did not, see there).

Frames carry no extension: :func:`~.transport.socket_app` removes every extension offer, so
no websocket has per-message compression, and the frame is the same bytes for every member.

It relies on these library internals, pinned by ``tests/websocket/test_frames.py``:
engine.io's ``Socket`` (``queue``, ``closed``, ``closing``, ``upgraded``, ``upgrading``,
``check_ping_timeout``; its websocket handler a bound method of it, given the websocket
wrapper whose ``send`` its writer calls), simple-websocket's ``ws.sock``/``ws.connected``,
gevent's ``socket._sock`` (the OS socket, non-blocking) and python-socketio's emit as
replaced here (``Manager.emit`` without a callback).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from engineio import packet as eio_packet
from engineio.async_drivers._websocket_wsgi import SimpleWebSocketWSGI
from socketio import packet as sio_packet
from wsproto.connection import Connection, ConnectionType
from wsproto.events import Message, TextMessage


def os_socket(sock: Any) -> Any:
    """The OS socket under a gevent socket (gevent keeps it, non-blocking, as ``_sock``, for
    code that must not wait); None for any other socket, and for a TLS one (gunicorn given a
    certificate): its OS socket carries records, not frames."""
    if hasattr(sock, "do_handshake"):
        return None
    return getattr(sock, "_sock", None)


def served_websocket(eio_server: Any) -> Any:
    """The class engine.io's server builds for each websocket connection."""
    return eio_server._async.get("websocket")


def text_frame(data: str) -> bytes:
    """A server's unfragmented websocket text frame of ``data``, without extensions."""
    return Connection(ConnectionType.SERVER).send(TextMessage(data=data))


class Writer:
    """Mixin for engine.io's websocket wrapper: marks the moments its socket is being
    written to (or waits to be), so a direct frame never goes in between; and writes each
    frame whole.

    simple-websocket writes a frame with one ``sock.send`` and drops what the kernel did not
    take: a member whose buffers are full (it reads slowly) got a frame cut short and the
    next one's header inside its payload, and its client closed the connection (1007).
    ``tests/production/test_room_frames.py`` found it on the library's own path. Here the
    frame is framed by the same wsproto connection and written with ``sendall``."""

    ws: Any
    #: The writer (or the close) is writing or waiting to: a direct frame must not go now.
    sending: bool = False
    #: Set while the rest of a direct frame is still being sent; cleared when it is.
    pending: Any = None

    def send(self, message: Any) -> None:
        self.sending = True
        try:
            while self.pending is not None:
                self.pending.wait()
            ws = self.ws
            if not ws.connected:  # what the library's wrapper raises for a closed one
                raise OSError("the websocket is closed")
            event = (
                Message(data=message)
                if isinstance(message, bytes)
                else TextMessage(data=str(message))
            )
            ws.sock.sendall(ws.ws.send(event))
        finally:
            self.sending = False

    def close(self) -> Any:
        self.sending = True
        try:
            while self.pending is not None:
                self.pending.wait()
            return super().close()  # type: ignore[misc]
        finally:
            self.sending = False


class DirectFrames:
    """The websockets of one Engine.IO server, and the fan-out that writes to them."""

    def __init__(self) -> None:
        #: Engine.IO sid -> the websocket wrapper of that socket, while its handler runs.
        self.writers: dict[str, Writer] = {}
        self._spawn: Callable[..., Any] | None = None
        self._event: Callable[[], Any] | None = None

    def install(self, eio_server: Any) -> bool:
        """Serve ``eio_server``'s websockets with :class:`Writer`; under gevent, also with
        this fan-out writing to them (True)."""
        base = served_websocket(eio_server)
        if not (isinstance(base, type) and issubclass(base, SimpleWebSocketWSGI)):
            return False  # another WebSocket server: left as it is
        direct: bool = eio_server.async_mode == "gevent"
        frames = self
        self._spawn = eio_server.start_background_task
        self._event = eio_server.create_event

        class Writing(Writer, base):  # type: ignore[valid-type,misc]
            def __init__(self, handler: Any, server: Any, **kwargs: Any) -> None:
                super().__init__(handler, server, **kwargs)
                socket = getattr(handler, "__self__", None)  # engine.io's Socket
                if direct and socket is not None:
                    self.app = lambda ws: frames._serve(socket, ws, handler)

        eio_server._async = {**eio_server._async, "websocket": Writing}
        return direct

    def _serve(self, socket: Any, ws: Writer, handler: Callable[[Any], Any]) -> Any:
        self.writers[socket.sid] = ws
        try:
            return handler(ws)
        finally:
            if self.writers.get(socket.sid) is ws:
                del self.writers[socket.sid]

    def emit(
        self,
        manager: Any,
        event: str,
        data: list[Any],
        namespace: str,
        room: Hashable,
        skip_sid: list[str] | None,
    ) -> bool:
        """What ``manager.emit(event, *data, namespace, room, skip_sid)`` does without a
        callback, each member's frame written at once where nothing comes before it; False
        (nothing sent) for a packet with binary attachments, left to the library."""
        if namespace not in manager.rooms:
            return True
        server = manager.server
        encoded = server.packet_class(
            sio_packet.EVENT, namespace=namespace, data=[event, *data]
        ).encode()
        if not isinstance(encoded, str):  # binary attachments: the library's way
            return False
        pkt = eio_packet.Packet(eio_packet.MESSAGE, encoded)
        frame = text_frame(pkt.encode())
        skip = [skip_sid] if isinstance(skip_sid, str) else (skip_sid or [])
        eio = server.eio
        for sid, eio_sid in manager.get_participants(namespace, room):
            if sid in skip:
                continue
            if not self._write(eio.sockets.get(eio_sid), eio_sid, frame):
                eio.send_packet(eio_sid, pkt)
        return True

    def _write(self, socket: Any, eio_sid: str, frame: bytes) -> bool:
        """Whether ``frame`` was handled here (written, or the socket found gone by the
        ping-timeout check, as the library's send would); False: queue it."""
        writer = self.writers.get(eio_sid)
        if (
            writer is None
            or socket is None
            or socket.closed
            or socket.closing
            or socket.upgrading
            or not socket.upgraded
            or writer.sending
            or writer.pending is not None
            or not socket.queue.empty()
        ):
            return False
        ws = writer.ws
        if not ws.connected:
            return False
        if not socket.check_ping_timeout():
            return True  # closed by it, as engine.io's send would
        raw = os_socket(ws.sock)  # one try, no wait
        lock = getattr(ws.sock, "lock", None)  # transport.SerialSocket's
        if raw is None or lock is None or not lock.acquire(blocking=False):
            return False  # a pong or the close is going out: the queue
        try:
            sent = raw.send(frame)
        except OSError:  # full (nothing written) or broken: the writer's way decides
            lock.release()
            return False
        if sent < len(frame):
            self._finish(writer, lock, ws.sock, frame[sent:])  # the lock goes with the rest
        else:
            lock.release()
        return True

    def _finish(self, writer: Writer, lock: Any, sock: Any, rest: bytes) -> None:
        """Send the rest of a frame the kernel took in part, in a task of its own, holding
        the socket's write ``lock`` taken for its first part: nothing else (a pong, the
        writer) is written to the socket until it is out."""
        spawn, event = self._spawn, self._event
        if spawn is None or event is None:  # not installed: no direct write was made
            raise RuntimeError("DirectFrames.install was not called")
        done = writer.pending = event()

        def send_rest() -> None:
            try:
                sock.sendall_holding(rest)
            except OSError:
                pass  # the connection is gone: its reader sees it and closes the socket
            finally:
                lock.release()
                writer.pending = None
                done.set()

        spawn(send_rest)
