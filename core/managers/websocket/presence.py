"""Membership and presence of the sockets' rooms in Redis, so they are true across instances.

Keys (all ``RedisManager.key(NAMESPACE, ...)``):

- presence: ``ws:room:<id>:sids`` sockets in the room; ``ws:room:<id>:users`` hash
  ``user_id -> username`` of the users with a socket in it and ``ws:room:<id>:user_sockets``
  hash ``user_id -> how many`` (so a join or a leave knows in O(1) whether it is the user's
  first or last socket there, and a room's count is ``HLEN``); ``ws:room:<id>:notice`` the
  claim on the room's next ``room_presence`` (``SOCKETIO_ROOM_PRESENCE_INTERVAL``);
  ``ws:sid:<sid>`` hash ``{user_id, username, instance}``; ``ws:sid:<sid>:rooms``;
  ``ws:instance:<iid>:sids``; ``ws:user:<uid>:sids`` a user's sockets on every instance (the
  per-user cap); ``ws:rooms:empty`` sorted set of rooms nobody is in, scored by when they
  became empty (the ``socket.room_empty`` hook fires after ``SOCKETIO_ROOM_EMPTY_TTL``);
- instances: ``ws:instances`` and ``ws:instance:<iid>:alive`` (a heartbeat with a TTL).

What a room is (its name, owner, privacy) belongs to the feature that made it (the chat
rooms: ``modules/rooms/store.py``); here a room is a name sockets are in.

A socket enters and leaves rooms through two Lua scripts (:data:`_ENTER`, :data:`_LEAVE`), so the
set of sockets and the per-user counts always move together, whichever instance writes them;
every cost of a join or a leave is O(1) in the room's size (decision 96). A socket's presence
is removed when it disconnects; an instance that stops heartbeating is
presumed crashed and any other instance removes its sockets' presence. An instance that was
only slow finds itself unlisted at its next heartbeat and records its sockets again. A write
of an instance's own socket that Redis did not answer is owed and settled at a later
heartbeat (``WebSocketManager.settle_presence``, decision 102).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from core.managers.redis import RedisManager, text

#: The first segment of every Redis key of the sockets' rooms (``RedisManager.key(NAMESPACE,
#: ...)``): presence, the room log, and the rooms module's records.
NAMESPACE = "ws"

# KEYS: the socket's rooms, the empty rooms, then per room its sids, users, user_sockets and
# notice keys. ARGV: sid, user_id, username, most users for per-user events, notice ms, then
# the room ids. Per room: {entered, first socket of the user, users now, large, claimed}.
_ENTER = """
local sid, uid, name = ARGV[1], ARGV[2], ARGV[3]
local most, notice_ms = tonumber(ARGV[4]), ARGV[5]
local out = {}
for i = 6, #ARGV do
  local room, k = ARGV[i], 3 + (i - 6) * 4
  local entered, first, large, claimed = 0, 0, 0, 0
  redis.call('SADD', KEYS[1], room)
  redis.call('ZREM', KEYS[2], room)
  if redis.call('SADD', KEYS[k], sid) == 1 then
    entered = 1
    if redis.call('HINCRBY', KEYS[k + 2], uid, 1) == 1 then first = 1 end
    redis.call('HSET', KEYS[k + 1], uid, name)
  end
  local users = redis.call('HLEN', KEYS[k + 1])
  if first == 1 and users > most then
    large = 1
    if redis.call('SET', KEYS[k + 3], '1', 'NX', 'PX', notice_ms) then claimed = 1 end
  end
  out[#out + 1] = {entered, first, users, large, claimed}
end
return out
"""

# KEYS as for _ENTER. ARGV: sid, user_id ('' when unknown), most, notice ms, now, then the
# room ids. Per room: {left, last socket of the user, users now, large, claimed}. A count
# never goes below zero (a socket entered by an instance older than these scripts).
_LEAVE = """
local sid, uid = ARGV[1], ARGV[2]
local most, notice_ms, now = tonumber(ARGV[3]), ARGV[4], ARGV[5]
local out = {}
for i = 6, #ARGV do
  local room, k = ARGV[i], 3 + (i - 6) * 4
  local left, last, large, claimed = 0, 0, 0, 0
  redis.call('SREM', KEYS[1], room)
  if redis.call('SREM', KEYS[k], sid) == 1 then
    left = 1
    if uid ~= '' and redis.call('HINCRBY', KEYS[k + 2], uid, -1) <= 0 then
      redis.call('HDEL', KEYS[k + 2], uid)
      last = redis.call('HDEL', KEYS[k + 1], uid)
    end
    if redis.call('SCARD', KEYS[k]) == 0 then
      redis.call('DEL', KEYS[k + 1], KEYS[k + 2])
      redis.call('ZADD', KEYS[2], 'NX', now, room)
    end
  end
  local users = redis.call('HLEN', KEYS[k + 1])
  if last == 1 and users + 1 > most then
    large = 1
    if redis.call('SET', KEYS[k + 3], '1', 'NX', 'PX', notice_ms) then claimed = 1 end
  end
  out[#out + 1] = {left, last, users, large, claimed}
end
return out
"""


# KEYS: the socket's record, its instance's sockets, its user's sockets. ARGV: sid, user_id,
# username, instance, most sockets per user. 1: recorded; 0: over the cap, nothing recorded.
_REGISTER = """
local sid = ARGV[1]
redis.call('SADD', KEYS[3], sid)
if redis.call('SCARD', KEYS[3]) > tonumber(ARGV[5]) then
  redis.call('SREM', KEYS[3], sid)
  return 0
end
redis.call('HSET', KEYS[1], 'user_id', ARGV[2], 'username', ARGV[3], 'instance', ARGV[4])
redis.call('SADD', KEYS[2], sid)
return 1
"""


@dataclass(frozen=True)
class Change:
    """What a socket entering or leaving a room changed there."""

    room_id: str
    #: The socket entered (was not in the room) or left (was in it).
    moved: bool
    #: It was the user's first socket to enter the room, or the last to leave it.
    user: bool
    #: Users with a socket in the room now.
    users: int
    #: A user change in a room of more than the per-user events' limit (with the user).
    large: bool
    #: This caller claimed the room's next ``room_presence`` notice.
    claimed: bool


class PresenceStore:
    """Which sockets are in which rooms, whose they are and on which instance."""

    def __init__(self, redis_manager: RedisManager, events_max: int, notice_seconds: float) -> None:
        self.redis = redis_manager
        self.client = redis_manager.client
        #: Rooms of more users than this: no per-user events, a claim on a notice instead.
        self.events_max = events_max
        self.notice_ms = max(1, int(notice_seconds * 1000))
        self.enter_script = redis_manager.register_script("presence_enter", _ENTER)
        self.leave_script = redis_manager.register_script("presence_leave", _LEAVE)
        self.register_script = redis_manager.register_script("presence_register", _REGISTER)

    # -- presence ---------------------------------------------------------------------------

    def _record_socket(
        self, pipe: Any, sid: str, user_id: str, username: str, instance: str
    ) -> None:
        pipe.hset(
            self.redis.key(NAMESPACE, "sid", sid),
            mapping={"user_id": user_id, "username": username, "instance": instance},
        )
        pipe.sadd(self.redis.key(NAMESPACE, "instance", instance, "sids"), sid)
        pipe.sadd(self.redis.key(NAMESPACE, "user", user_id, "sids"), sid)

    def register_socket(
        self, sid: str, user_id: str, username: str, instance: str, max_per_user: int
    ) -> bool:
        """Record the socket; False (and nothing recorded) when the user would have more
        than ``max_per_user`` sockets. One script: added, counted and undone if over at
        once, so concurrent connects can never exceed the cap (nor refuse each other)."""
        keys = [
            f"{NAMESPACE}:sid:{sid}",
            f"{NAMESPACE}:instance:{instance}:sids",
            f"{NAMESPACE}:user:{user_id}:sids",
        ]
        return bool(self.register_script(keys, [sid, user_id, username, instance, max_per_user]))

    def _keys(self, sid: str, room_ids: list[str]) -> list[str]:
        """The scripts' keys (logical names: the script registry namespaces them)."""
        keys = [f"{NAMESPACE}:sid:{sid}:rooms", f"{NAMESPACE}:rooms:empty"]
        for room_id in room_ids:
            room = f"{NAMESPACE}:room:{room_id}"
            keys += [f"{room}:sids", f"{room}:users", f"{room}:user_sockets", f"{room}:notice"]
        return keys

    @staticmethod
    def _changes(room_ids: list[str], rows: Any) -> list[Change]:
        return [
            Change(room_id, bool(moved), bool(user), int(users), bool(large), bool(claimed))
            for room_id, (moved, user, users, large, claimed) in zip(room_ids, rows, strict=True)
        ]

    def _enter(self, sid: str, user_id: str, username: str, room_ids: list[str]) -> list[Change]:
        if not room_ids:
            return []
        rows = self.enter_script(
            self._keys(sid, room_ids),
            [sid, user_id, username, self.events_max, self.notice_ms, *room_ids],
        )
        return self._changes(room_ids, rows)

    def _leave(self, sid: str, user_id: str, room_ids: list[str]) -> list[Change]:
        if not room_ids:
            return []
        rows = self.leave_script(
            self._keys(sid, room_ids),
            [sid, user_id, self.events_max, self.notice_ms, time.time(), *room_ids],
        )
        return self._changes(room_ids, rows)

    def enter(self, room_id: str, sid: str, user_id: str, username: str) -> Change:
        return self._enter(sid, user_id, username, [room_id])[0]

    def leave(self, room_id: str, sid: str, user_id: str) -> Change:
        return self._leave(sid, user_id, [room_id])[0]

    def expired_empty(self, ttl: float, batch: int = 100) -> list[str]:
        """Rooms empty for longer than ``ttl`` seconds (up to ``batch`` a call), each taken off
        the list by exactly one caller (whichever instance asks first gets it)."""
        key = self.redis.key(NAMESPACE, "rooms", "empty")
        due = self.client.zrangebyscore(key, 0, time.time() - ttl, start=0, num=batch)
        expired = []
        for raw in due:
            room_id = text(raw)
            if self.client.zrem(key, room_id) and not self.client.exists(
                self.redis.key(NAMESPACE, "room", room_id, "sids")
            ):
                expired.append(room_id)
        return expired

    def close(self, room_id: str) -> None:
        """Nobody is in the room any more (it is closed)."""
        sids = [
            text(s)
            for s in self.client.smembers(self.redis.key(NAMESPACE, "room", room_id, "sids"))
        ]
        with self.client.pipeline(transaction=True) as pipe:
            for sid in sids:
                pipe.srem(self.redis.key(NAMESPACE, "sid", sid, "rooms"), room_id)
            pipe.zrem(self.redis.key(NAMESPACE, "rooms", "empty"), room_id)
            pipe.delete(
                *(
                    self.redis.key(NAMESPACE, "room", room_id, part)
                    for part in ("sids", "users", "user_sockets", "notice")
                )
            )
            pipe.execute()

    def is_in(self, room_id: str, sid: str) -> bool:
        return bool(self.client.sismember(self.redis.key(NAMESPACE, "room", room_id, "sids"), sid))

    def members(self, room_id: str, limit: int | None = None) -> list[dict[str, str]]:
        """``{user_id, username}`` of the users with a socket in the room, on any instance,
        sorted by ``user_id``: every one, or at most ``limit`` (some of them: the first
        ``HSCAN`` pages, so a room of 10,000 costs what a room of ``limit`` does)."""
        key = self.redis.key(NAMESPACE, "room", room_id, "users")
        found: dict[str, str] = {}
        cursor = 0
        while True:
            cursor, page = self.client.hscan(key, cursor, count=limit or 1000)
            found.update((text(k), text(v)) for k, v in cast(dict[Any, Any], page).items())
            if not cursor or (limit is not None and len(found) >= limit):
                break
        users = sorted(found.items())[:limit]
        return [{"user_id": uid, "username": name} for uid, name in users]

    def count(self, room_id: str) -> int:
        """How many users have a socket in the room, on any instance."""
        return int(self.client.hlen(self.redis.key(NAMESPACE, "room", room_id, "users")))

    def drop_socket(self, sid: str, user_id: str = "") -> tuple[dict[str, str], list[Change]]:
        """Remove a socket's presence everywhere; returns its user and what leaving each of
        its rooms changed. ``user_id`` is whose it is when its record is gone already (a
        join that entered a room after the socket's disconnect had removed it)."""
        info = {
            text(k): text(v)
            for k, v in self.client.hgetall(self.redis.key(NAMESPACE, "sid", sid)).items()
        }
        if user_id and not info.get("user_id"):
            info["user_id"] = user_id
        rooms = sorted(
            text(r) for r in self.client.smembers(self.redis.key(NAMESPACE, "sid", sid, "rooms"))
        )
        changes = self._leave(sid, info.get("user_id", ""), rooms)
        with self.client.pipeline(transaction=True) as pipe:
            if info.get("instance"):
                pipe.srem(self.redis.key(NAMESPACE, "instance", info["instance"], "sids"), sid)
            if info.get("user_id"):
                pipe.srem(self.redis.key(NAMESPACE, "user", info["user_id"], "sids"), sid)
            pipe.delete(
                self.redis.key(NAMESPACE, "sid", sid),
                self.redis.key(NAMESPACE, "sid", sid, "rooms"),
            )
            pipe.execute()
        return info, changes

    # -- instances ------------------------------------------------------------------------

    def heartbeat(self, instance: str, ttl: float) -> bool:
        """Mark the instance alive for ``ttl`` seconds; True when it was not listed (its first
        heartbeat, or another instance took it for dead and removed its presence)."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.sadd(self.redis.key(NAMESPACE, "instances"), instance)
            pipe.set(
                self.redis.key(NAMESPACE, "instance", instance, "alive"), 1, px=int(ttl * 1000)
            )
            added, _ = pipe.execute()
        return bool(added)

    def restore_socket(
        self, sid: str, user_id: str, username: str, instance: str, room_ids: Iterable[str]
    ) -> tuple[list[Change], list[Change]]:
        """Record a live socket's presence as its instance knows it: the socket, in exactly
        ``room_ids`` (after its instance was taken for dead, or a write that failed); returns
        what leaving the rooms it is recorded in and should not be, and entering its rooms,
        changed."""
        rooms = sorted(set(room_ids))
        with self.client.pipeline(transaction=True) as pipe:
            self._record_socket(pipe, sid, user_id, username, instance)
            pipe.smembers(self.redis.key(NAMESPACE, "sid", sid, "rooms"))
            recorded = {text(r) for r in pipe.execute()[-1]}
        left = self._leave(sid, user_id, sorted(recorded.difference(rooms)))
        return left, self._enter(sid, user_id, username, rooms)

    def dead_instances(self) -> list[str]:
        instances = sorted(
            text(i) for i in self.client.smembers(self.redis.key(NAMESPACE, "instances"))
        )
        with self.client.pipeline(transaction=False) as pipe:
            for instance in instances:
                pipe.exists(self.redis.key(NAMESPACE, "instance", instance, "alive"))
            alive = pipe.execute()
        return [i for i, up in zip(instances, alive, strict=True) if not up]

    def claim_reap(self, instance: str) -> bool:
        """One instance cleans up after a dead one; the claim expires if it dies too."""
        return bool(
            self.client.set(
                self.redis.key(NAMESPACE, "instance", instance, "reaping"), 1, nx=True, ex=30
            )
        )

    def instance_sids(self, instance: str) -> list[str]:
        return [
            text(s)
            for s in self.client.smembers(self.redis.key(NAMESPACE, "instance", instance, "sids"))
        ]

    def forget_instance(self, instance: str) -> None:
        with self.client.pipeline(transaction=True) as pipe:
            pipe.srem(self.redis.key(NAMESPACE, "instances"), instance)
            pipe.delete(
                self.redis.key(NAMESPACE, "instance", instance, "sids"),
                self.redis.key(NAMESPACE, "instance", instance, "alive"),
                self.redis.key(NAMESPACE, "instance", instance, "reaping"),
            )
            pipe.execute()
