"""Membership and presence of the sockets' rooms in Redis, so they are true across instances.

Keys (all ``RedisManager.key(NAMESPACE, ...)``):

- presence: ``ws:room:<id>:sids`` sockets in the room; ``ws:sid:<sid>`` hash
  ``{user_id, username, instance}``; ``ws:sid:<sid>:rooms``; ``ws:instance:<iid>:sids``;
  ``ws:user:<uid>:sids`` a user's sockets on every instance (the per-user cap);
  ``ws:rooms:empty`` sorted set of rooms nobody is in, scored by when they became empty
  (the ``socket.room_empty`` hook fires after ``SOCKETIO_ROOM_EMPTY_TTL``);
- instances: ``ws:instances`` and ``ws:instance:<iid>:alive`` (a heartbeat with a TTL).

What a room is (its name, owner, privacy) belongs to the feature that made it (the chat
rooms: ``modules/rooms/store.py``); here a room is a name sockets are in.

A socket's presence is removed when it disconnects; an instance that stops heartbeating is
presumed crashed and any other instance removes its sockets' presence. An instance that was
only slow finds itself unlisted at its next heartbeat and records its sockets again.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from core.managers.redis import RedisManager, text

#: The first segment of every Redis key of the sockets' rooms (``RedisManager.key(NAMESPACE,
#: ...)``): presence, the room log, and the rooms module's records.
NAMESPACE = "ws"


class PresenceStore:
    """Which sockets are in which rooms, whose they are and on which instance."""

    def __init__(self, redis_manager: RedisManager) -> None:
        self.redis = redis_manager
        self.client = redis_manager.client

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
        than ``max_per_user`` sockets. Added, then counted, then undone if over: concurrent
        connects can never exceed the cap."""
        with self.client.pipeline(transaction=True) as pipe:
            self._record_socket(pipe, sid, user_id, username, instance)
            pipe.scard(self.redis.key(NAMESPACE, "user", user_id, "sids"))
            count = pipe.execute()[-1]
        if count <= max_per_user:
            return True
        with self.client.pipeline(transaction=True) as pipe:
            pipe.srem(self.redis.key(NAMESPACE, "user", user_id, "sids"), sid)
            pipe.srem(self.redis.key(NAMESPACE, "instance", instance, "sids"), sid)
            pipe.delete(self.redis.key(NAMESPACE, "sid", sid))
            pipe.execute()
        return False

    def enter(self, room_id: str, sid: str) -> None:
        with self.client.pipeline(transaction=True) as pipe:
            pipe.sadd(self.redis.key(NAMESPACE, "room", room_id, "sids"), sid)
            pipe.sadd(self.redis.key(NAMESPACE, "sid", sid, "rooms"), room_id)
            pipe.zrem(self.redis.key(NAMESPACE, "rooms", "empty"), room_id)
            pipe.execute()

    def leave(self, room_id: str, sid: str) -> None:
        with self.client.pipeline(transaction=True) as pipe:
            pipe.srem(self.redis.key(NAMESPACE, "room", room_id, "sids"), sid)
            pipe.srem(self.redis.key(NAMESPACE, "sid", sid, "rooms"), room_id)
            pipe.execute()
        self._mark_if_empty([room_id])

    def _mark_if_empty(self, room_ids: list[str]) -> None:
        """Note when rooms became empty (:meth:`expired_empty` hands them out after a TTL)."""
        if not room_ids:
            return
        with self.client.pipeline(transaction=False) as pipe:
            for room_id in room_ids:
                pipe.scard(self.redis.key(NAMESPACE, "room", room_id, "sids"))
            counts = pipe.execute()
        empty = {r: time.time() for r, n in zip(room_ids, counts, strict=True) if n == 0}
        if empty:
            self.client.zadd(self.redis.key(NAMESPACE, "rooms", "empty"), empty, nx=True)

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
            pipe.delete(self.redis.key(NAMESPACE, "room", room_id, "sids"))
            pipe.execute()

    def is_in(self, room_id: str, sid: str) -> bool:
        return bool(self.client.sismember(self.redis.key(NAMESPACE, "room", room_id, "sids"), sid))

    def members(self, room_id: str) -> list[dict[str, str]]:
        """``{user_id, username}`` of every user with a socket in the room, on any instance."""
        sids = sorted(
            text(s)
            for s in self.client.smembers(self.redis.key(NAMESPACE, "room", room_id, "sids"))
        )
        with self.client.pipeline(transaction=False) as pipe:
            for sid in sids:
                pipe.hmget(self.redis.key(NAMESPACE, "sid", sid), "user_id", "username")
            rows = pipe.execute()
        users: dict[str, str] = {}
        for user_id, username in rows:
            if user_id is not None:
                users.setdefault(text(user_id), text(username or b""))
        return [{"user_id": uid, "username": name} for uid, name in sorted(users.items())]

    def user_present(self, room_id: str, user_id: str, except_sid: str = "") -> bool:
        """Whether ``user_id`` still has another socket in the room."""
        sids = [
            text(s)
            for s in self.client.smembers(self.redis.key(NAMESPACE, "room", room_id, "sids"))
        ]
        others = [sid for sid in sids if sid != except_sid]
        with self.client.pipeline(transaction=False) as pipe:
            for sid in others:
                pipe.hget(self.redis.key(NAMESPACE, "sid", sid), "user_id")
            owners = pipe.execute()
        return any(owner is not None and text(owner) == user_id for owner in owners)

    def drop_socket(self, sid: str) -> tuple[dict[str, str], list[str]]:
        """Remove a socket's presence everywhere; returns its user and the rooms it was in."""
        info = {
            text(k): text(v)
            for k, v in self.client.hgetall(self.redis.key(NAMESPACE, "sid", sid)).items()
        }
        rooms = [
            text(r) for r in self.client.smembers(self.redis.key(NAMESPACE, "sid", sid, "rooms"))
        ]
        with self.client.pipeline(transaction=True) as pipe:
            for room_id in rooms:
                pipe.srem(self.redis.key(NAMESPACE, "room", room_id, "sids"), sid)
            if info.get("instance"):
                pipe.srem(self.redis.key(NAMESPACE, "instance", info["instance"], "sids"), sid)
            if info.get("user_id"):
                pipe.srem(self.redis.key(NAMESPACE, "user", info["user_id"], "sids"), sid)
            pipe.delete(
                self.redis.key(NAMESPACE, "sid", sid),
                self.redis.key(NAMESPACE, "sid", sid, "rooms"),
            )
            pipe.execute()
        self._mark_if_empty(rooms)
        return info, rooms

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
    ) -> None:
        """Record a live socket's presence again in ``room_ids``, the rooms it is in (after its
        instance was taken for dead)."""
        with self.client.pipeline(transaction=True) as pipe:
            self._record_socket(pipe, sid, user_id, username, instance)
            for room_id in room_ids:
                pipe.sadd(self.redis.key(NAMESPACE, "room", room_id, "sids"), sid)
                pipe.sadd(self.redis.key(NAMESPACE, "sid", sid, "rooms"), room_id)
                pipe.zrem(self.redis.key(NAMESPACE, "rooms", "empty"), room_id)
            pipe.execute()

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
