"""The Socket.IO message queue: python-socketio's Redis manager on the app's Redis client,
stoppable, with the room log's messages handed to
:class:`~core.managers.websocket.delivery.Delivery`.

The library makes its own client from the URL (a pool without bound that fails nothing and
opens a connection per concurrent emit). Here it uses the client it is given, one of the
RedisManager's (``new_client``: a bounded pool whose busy moments make an emit wait), and
(re)subscribes on it; each reconnect closes the previous subscription, so its connection
goes back to the pool.

The library's listener thread loops forever, so every closed app would leave a thread
reconnecting to Redis. ``close()`` marks the queue closed and publishes a no-op message on
its channel; the listener wakes, sees the mark and ends its thread; then the client closes.

With a ``tracer`` (tracing on; :mod:`core.managers.websocket.tracing` sets it), an emit is a
publish span, the published message carries the trace context, and each delivery is a span
under it, on this instance and on the others.

Its room bookkeeping is :class:`~core.managers.websocket.membership.IndexedRooms`: the
library's costs O(sockets) per disconnect.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import redis
import socketio
from opentelemetry.trace import Tracer

from core.managers.websocket.delivery import Delivery
from core.managers.websocket.frames import DirectFrames
from core.managers.websocket.membership import IndexedRooms
from core.managers.websocket.roomlog import ROOM_LOG_HOST
from core.managers.websocket.tracing import deliver_span, publish_span, with_trace_context

#: How long close() waits for the listener to see the no-op and end (Redis is up), before
#: closing the client anyway (its next reconnect attempt then ends the thread).
JOIN_SECONDS = 2.0


class _Stopped(BaseException):
    """Ends the listener thread; the library's loop catches ``Exception`` only."""


class RedisQueue(IndexedRooms, socketio.RedisManager):  # type: ignore[misc]
    pubsub: redis.client.PubSub | None

    def __init__(self, client: redis.Redis, channel: str) -> None:
        super().__init__(channel=channel)
        self._client = client
        self._closing = threading.Event()
        #: Spans for the fan-out while tracing is on (None: no tracing code runs).
        self.tracer: Tracer | None = None
        #: Delivers the room log's messages (set by the WebSocketManager).
        self.delivery: Delivery | None = None
        #: Writes a room message's frame straight to its members' websockets (gevent only:
        #: set by the WebSocketManager when installed; :mod:`.frames`).
        self.frames: DirectFrames | None = None

    def emit(self, event: str, data: Any, *args: Any, **kwargs: Any) -> Any:
        if self.tracer is None or kwargs.get("ignore_queue"):
            return super().emit(event, data, *args, **kwargs)
        with publish_span(self.tracer, event):
            return super().emit(event, data, *args, **kwargs)

    def _handle_emit(self, message: dict[str, Any]) -> None:
        if self.tracer is None:
            self._deliver(message)
            return
        with deliver_span(self.tracer, message, self.host_id):
            self._deliver(message)

    def _deliver(self, message: dict[str, Any]) -> None:
        if self.delivery is not None and message.get("host_id") == ROOM_LOG_HOST:
            self.delivery.dispatch(message, self._emit_room_message)
        else:
            super()._handle_emit(message)

    def _emit_room_message(self, message: dict[str, Any]) -> None:
        """A room-log message to this instance's members of its room: one frame written to
        each websocket where nothing comes before it (:mod:`.frames`), else the library's
        way."""
        frames = self.frames
        if (
            frames is None
            or message.get("callback") is not None
            or message.get("binary")
            or not frames.emit(
                self,
                message["event"],
                message["data"],
                message.get("namespace") or "/",
                message["room"],
                message.get("skip_sid"),
            )
        ):
            super()._handle_emit(message)

    def _publish(self, data: Any) -> None:
        """As the library's, on the given client: its pool reconnects by itself (and
        retries a dropped connection once), so publishing never resubscribes; a failure is
        logged and the message dropped, as the library does. Traced: with the context."""
        if self.tracer is not None and isinstance(data, dict) and data.get("method") == "emit":
            data = with_trace_context(data)
        try:
            self._client.publish(self.channel, self.json.dumps(data))
        except redis.RedisError as exc:
            self._get_logger().error(
                "Cannot publish to redis... giving up", extra={"redis_exception": str(exc)}
            )

    def _redis_connect(self) -> None:
        """The listener's (re)subscription; the end of the thread once closing."""
        if self._closing.is_set():
            raise _Stopped
        if self.pubsub is not None:
            with contextlib.suppress(redis.RedisError, OSError):
                self.pubsub.close()
        self.redis = self._client
        self.pubsub = self._client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        self.connected = True

    def _redis_listen_with_retries(self) -> Iterator[Any]:
        for message in super()._redis_listen_with_retries():
            if self._closing.is_set():
                raise _Stopped
            yield message

    def _thread(self) -> None:
        with contextlib.suppress(_Stopped):
            super()._thread()

    def close(self) -> None:
        if self._closing.is_set():
            return
        self._closing.set()
        self._publish({"method": "noop", "host_id": self.host_id})
        listener = getattr(self, "thread", None)  # started by initialize(), if served
        if listener is not None:
            listener.join(JOIN_SECONDS)
        self._client.close()
