"""Room-log messages to this instance's sockets: in ``seq`` order, and to a socket that joins
a room only after the ack of its join.

Every room message reaches each instance through its queue listener, one at a time, in the
order the room log's script published them (:mod:`.roomlog`); :meth:`Delivery.dispatch`
hands each to the room's local sockets. A socket joining a room must see the join's ack
(``seq`` and what it ``missed``) before the room's next live message, or a client that drops
the ``seq`` it already holds would drop messages or take them out of order. So a join:

1. :meth:`Delivery.hold`: the socket's live messages of that room are kept aside from now;
2. enters the Socket.IO room and reads the log (everything up to its ``seq`` is in it);
3. :meth:`Delivery.release` once the ack is queued to the socket (:func:`after_ack`): the
   messages kept aside with a higher ``seq`` go out, then live delivery resumes.

Dispatch and release hold one lock, so no live message can slip between them. It is
re-entrant: sending to a socket whose client stopped answering pings closes it on the spot,
and its disconnect handler (:meth:`Delivery.forget`) runs in the sending task.

:func:`after_ack` runs a function once the current event's ack has been queued to its socket:
python-socketio sends the ack right after the handler returns, in the same task, so
:func:`install_after_ack` wraps that step of its server.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Any

Send = Callable[[str, str, dict[str, Any]], None]  # (sid, event, data)

_after_ack: contextvars.ContextVar[list[Callable[[], None]] | None] = contextvars.ContextVar(
    "after_ack", default=None
)


def after_ack(function: Callable[[], None]) -> None:
    """Run ``function`` once the current Socket.IO event's ack is queued (at once outside an
    event)."""
    pending = _after_ack.get()
    if pending is None:
        function()
    else:
        pending.append(function)


def install_after_ack(server: Any) -> None:
    """Make :func:`after_ack` work on ``server`` (a ``socketio.Server``): its event step
    (handler, then ack) runs the functions registered during it afterwards."""
    handle_event = server._handle_event_internal

    def handle_then_run_after_ack(*args: Any) -> None:
        pending: list[Callable[[], None]] = []
        token = _after_ack.set(pending)
        try:
            handle_event(*args)
        finally:
            _after_ack.reset(token)
            for function in pending:
                function()

    server._handle_event_internal = handle_then_run_after_ack


class Delivery:
    def __init__(self, send: Send) -> None:
        self._send = send
        self._lock = threading.RLock()
        #: room -> sid -> (event, data) kept aside while the sid's join is answered
        self._held: dict[str, dict[str, list[tuple[str, dict[str, Any]]]]] = {}

    def dispatch(self, message: dict[str, Any], emit: Callable[[dict[str, Any]], None]) -> None:
        """Deliver one room-log message of the queue (``emit`` sends it to the room's local
        sockets, skipping ``skip_sid``)."""
        room = message["room"]
        with self._lock:
            held = self._held.get(room)
            if held:
                item = (message["event"], message["data"][0])
                for kept in held.values():
                    kept.append(item)
                message = {**message, "skip_sid": list(held)}
            emit(message)

    def hold(self, sid: str, room: str) -> None:
        with self._lock:
            self._held.setdefault(room, {})[sid] = []

    def release(self, sid: str, room: str, after_seq: int | None) -> None:
        """Send what was kept aside for ``sid`` with a ``seq`` above ``after_seq`` (nothing
        when None: the join failed), then deliver live again."""
        with self._lock:
            held = self._held.get(room, {})
            kept = held.pop(sid, [])
            if not held:
                self._held.pop(room, None)
            if after_seq is None:
                return
            for event, data in kept:
                if data.get("seq", 0) > after_seq:
                    self._send(sid, event, data)

    def forget(self, sid: str) -> None:
        """The socket is gone: drop whatever was kept for it."""
        with self._lock:
            for room in [room for room, held in self._held.items() if sid in held]:
                del self._held[room][sid]
                if not self._held[room]:
                    del self._held[room]
