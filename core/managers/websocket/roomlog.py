"""The room log: every room message numbered (``seq``), kept in Redis, and delivered in order.

One Lua script per message does everything that must be atomic, in one round trip:

1. ``INCR ws:log:<room>:seq``: the message's ``seq``, exactly one more than the room's
   previous message, whichever instance sends it;
2. ``XADD ws:log:<room> MAXLEN = SOCKETIO_HISTORY_MAX <seq>-0 m <message>`` and ``PEXPIRE``
   it ``SOCKETIO_HISTORY_SECONDS`` after the room's last message: the history, bounded in
   length and, for a quiet room, in time;
3. ``PUBLISH`` on the Socket.IO channel: every instance's queue listener (this one's too)
   receives the room's messages in the order the script ran, i.e. in ``seq`` order, and
   hands them to :class:`~core.managers.websocket.delivery.Delivery`.

A stream entry's id is ``<seq>-0``, so the history is read by ``seq`` directly (``XRANGE``
after ``since``, ``XREVRANGE`` before ``before``). The counter has no expiry: a room's numbers
never start again while it exists; :meth:`RoomLog.drop` removes both keys when it closes.

The message is encoded once, in Python, around its ``seq`` (``{"seq":`` first): the script
only concatenates strings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import Tracer

from core.managers.redis import RedisManager
from core.managers.websocket.presence import NAMESPACE
from core.managers.websocket.tracing import publish_span, trace_context

#: The ``host_id`` of room-log messages on the Socket.IO channel: no instance has it, so
#: every instance (the sender's too) delivers them from its listener, in channel order.
ROOM_LOG_HOST = "room-log"

_APPEND = """
local seq = redis.call('INCR', KEYS[1])
local message = ARGV[1] .. seq .. ARGV[2]
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], seq .. '-0', 'm', message)
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PUBLISH', ARGV[5], ARGV[6] .. message .. ARGV[7])
return seq
"""

_HEAD = '{"seq":'


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Recovery:
    """What a (re)joining socket missed: ``missed`` after ``since`` in order; ``seq`` the
    room's latest; ``recovered`` False when the history no longer reached back to ``since``
    (``missed`` is then the retained tail)."""

    seq: int
    recovered: bool
    missed: list[dict[str, Any]]


class RoomLog:
    def __init__(
        self, redis: RedisManager, channel: str, history_max: int, history_seconds: int
    ) -> None:
        self.redis = redis
        self.client = redis.client
        self.channel = channel
        self.history_max = history_max
        self.history_ms = history_seconds * 1000
        self.script = redis.register_script("room_log_append", _APPEND)
        #: A publish span per message while tracing is on (None: no tracing code runs).
        self.tracer: Tracer | None = None

    def _keys(self, room: str) -> tuple[str, str]:
        return self.redis.key(NAMESPACE, "log", room, "seq"), self.redis.key(NAMESPACE, "log", room)

    def append(self, room: str, event: str, message: dict[str, Any]) -> dict[str, Any]:
        """Number ``message`` (its other fields as given), keep it in the history and publish
        it to the room as ``event``; returns it with its ``seq``."""
        encoded = _compact({"seq": 0, **{k: v for k, v in message.items() if k != "seq"}})
        tail = encoded[len(_HEAD) + 1 :]  # after '{"seq":0'
        envelope_head = f'{{"method":"emit","event":{_compact(event)},"data":['
        envelope_tail = (
            f'],"binary":false,"namespace":"/","room":{_compact(room)},'
            f'"skip_sid":null,"callback":null,"host_id":"{ROOM_LOG_HOST}"}}'
        )
        if self.tracer is None:
            seq = self._append(room, tail, envelope_head, envelope_tail)
        else:  # a publish span, and its context in the envelope for every delivery
            with publish_span(self.tracer, event):
                carrier = _compact(trace_context())
                traced_tail = f'{envelope_tail[:-1]},"trace":{carrier}}}'
                seq = self._append(room, tail, envelope_head, traced_tail)
        return {"seq": int(seq), **message}

    def _append(self, room: str, tail: str, envelope_head: str, envelope_tail: str) -> Any:
        return self.script(
            self._logical(room),
            [
                _HEAD,
                tail,
                self.history_max,
                self.history_ms,
                self.channel,
                envelope_head,
                envelope_tail,
            ],
        )

    def _logical(self, room: str) -> list[str]:
        # The script registry namespaces keys itself: logical names here.
        return [f"{NAMESPACE}:log:{room}:seq", f"{NAMESPACE}:log:{room}"]

    def latest(self, room: str) -> int:
        return int(self.client.get(self._keys(room)[0]) or 0)

    def since(self, room: str, since: int | None) -> Recovery:
        """The room's latest ``seq`` and, with ``since``, what came after it."""
        seq_key, log_key = self._keys(room)
        if since is None:
            return Recovery(self.latest(room), True, [])
        with self.client.pipeline(transaction=True) as pipe:
            pipe.get(seq_key)
            pipe.xrange(log_key, min=f"{since + 1}-0", count=self.history_max)
            raw_seq, entries = pipe.execute()
        latest = int(raw_seq or 0)
        missed = [_decode(fields) for _, fields in entries]
        if since > latest:  # numbers this room never gave: the client's view is not this room's
            entries = self.client.xrange(log_key, count=self.history_max) or []
            return Recovery(latest, False, [_decode(fields) for _, fields in entries])
        recovered = since == latest or bool(missed and missed[0]["seq"] == since + 1)
        return Recovery(latest, recovered, missed)

    def page(self, room: str, before: int | None, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """Up to ``limit`` messages older than ``before`` (the newest when None), oldest first,
        and whether the history holds older ones."""
        log_key = self._keys(room)[1]
        newest = "+" if before is None else f"{before - 1}-0"
        if before is not None and before <= 1:
            return [], False
        entries = self.client.xrevrange(log_key, max=newest, count=limit + 1) or []
        more = len(entries) > limit
        return [_decode(fields) for _, fields in reversed(entries[:limit])], more

    def drop(self, room: str) -> None:
        """Forget the room's numbers and history (the room is closed)."""
        self.client.delete(*self._keys(room))


def _decode(fields: Any) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(fields[b"m"])
    return message
