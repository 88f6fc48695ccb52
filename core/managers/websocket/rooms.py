"""Rooms, membership and presence in Redis, so they are true across instances.

Keys (all through ``RedisManager.key``):

- ``ws:room:<id>`` hash ``{id, name, private, owner, created_at}``;
  ``ws:room:<id>:allowed`` owner and invited members of a private room;
  ``ws:rooms:public`` public room ids; ``ws:user:<uid>:rooms`` rooms a user owns or joined
  (never written by someone else: an invitation only lets a user join);
  ``ws:owner:<uid>:rooms`` rooms a user owns (the per-owner cap); ``ws:rooms:empty`` sorted
  set of rooms nobody is in, scored by when they became empty (deleted after the TTL);
- presence: ``ws:room:<id>:sids`` sockets in the room; ``ws:sid:<sid>`` hash
  ``{user_id, username, instance}``; ``ws:sid:<sid>:rooms``; ``ws:instance:<iid>:sids``;
  ``ws:user:<uid>:sids`` a user's sockets on every instance (the per-user cap);
- instances: ``ws:instances`` and ``ws:instance:<iid>:alive`` (a heartbeat with a TTL).

A socket's presence is removed when it disconnects; an instance that stops heartbeating is
presumed crashed and any other instance removes its sockets' presence. An instance that was
only slow finds itself unlisted at its next heartbeat and records its sockets again.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.managers.database.json import to_json_compatible
from core.managers.redis import RedisManager
from core.managers.websocket.roomlog import RoomLog


@dataclass(frozen=True)
class Room:
    id: str
    name: str
    private: bool
    owner: str

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "private": self.private, "owner": self.owner}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RoomStore:
    def __init__(self, redis_manager: RedisManager, log: RoomLog) -> None:
        self.redis = redis_manager
        self.client = redis_manager.client
        self.log = log

    def _k(self, *parts: str) -> str:
        return self.redis.key("ws", *parts)

    # -- rooms ----------------------------------------------------------------------------

    def create(
        self, name: str, private: bool, owner: str, members: Iterable[str], max_owned: int
    ) -> Room | None:
        """The new room, or None when ``owner`` already owns ``max_owned`` rooms (counted
        after adding, then undone: concurrent creates cannot exceed the cap)."""
        room = Room(secrets.token_urlsafe(12), name, private, owner)
        allowed = {owner, *members}
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(
                self._k("room", room.id),
                mapping={
                    "id": room.id,
                    "name": name,
                    "private": "1" if private else "0",
                    "owner": owner,
                    "created_at": to_json_compatible(datetime.now(UTC)),
                },
            )
            if private:
                pipe.sadd(self._k("room", room.id, "allowed"), *allowed)
            else:
                pipe.sadd(self._k("rooms", "public"), room.id)
            pipe.sadd(self._k("user", owner, "rooms"), room.id)
            pipe.sadd(self._k("owner", owner, "rooms"), room.id)
            pipe.scard(self._k("owner", owner, "rooms"))
            owned = pipe.execute()[-1]
        if owned > max_owned:
            self.delete(room)
            return None
        return room

    def get(self, room_id: str) -> Room | None:
        data = self.client.hgetall(self._k("room", room_id))
        if not data:
            return None
        fields = {_text(k): _text(v) for k, v in data.items()}
        return Room(fields["id"], fields["name"], fields["private"] == "1", fields["owner"])

    def may_join(self, room: Room, user_id: str) -> bool:
        if not room.private or user_id == room.owner:
            return True
        return bool(self.client.sismember(self._k("room", room.id, "allowed"), user_id))

    def list_for(self, user_id: str, limit: int) -> tuple[list[Room], bool]:
        """At most ``limit`` rooms: the user's own (owned or joined) first, then public ones;
        and whether there were more. Reads at most about ``limit`` ids of each set."""
        ids: list[str] = []
        more = False
        for key in (self._k("user", user_id, "rooms"), self._k("rooms", "public")):
            for raw in self.client.sscan_iter(key, count=limit):
                room_id = _text(raw)
                if room_id in ids:
                    continue
                if len(ids) >= limit:
                    more = True
                    break
                ids.append(room_id)
            if more:
                break
        with self.client.pipeline(transaction=False) as pipe:
            for room_id in ids:
                pipe.hgetall(self._k("room", room_id))
            rows = pipe.execute()
        rooms, gone = [], []
        for room_id, data in zip(ids, rows, strict=True):
            if data:
                fields = {_text(k): _text(v) for k, v in data.items()}
                rooms.append(
                    Room(fields["id"], fields["name"], fields["private"] == "1", fields["owner"])
                )
            else:
                gone.append(room_id)
        if gone:  # rooms deleted since the user joined them
            self.client.srem(self._k("user", user_id, "rooms"), *gone)
        return sorted(rooms, key=lambda room: (room.name, room.id)), more

    def forget(self, room: Room, user_id: str) -> None:
        """The user leaves the room's member list and their own list of rooms."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.srem(self._k("room", room.id, "allowed"), user_id)
            pipe.srem(self._k("user", user_id, "rooms"), room.id)
            pipe.execute()

    def delete(self, room: Room) -> list[str]:
        """Remove the room; returns the sockets that were in it."""
        sids = [_text(s) for s in self.client.smembers(self._k("room", room.id, "sids"))]
        allowed = self.client.smembers(self._k("room", room.id, "allowed"))
        with self.client.pipeline(transaction=True) as pipe:
            for sid in sids:
                pipe.srem(self._k("sid", sid, "rooms"), room.id)
            for user_id in {room.owner, *(_text(a) for a in allowed)}:
                pipe.srem(self._k("user", user_id, "rooms"), room.id)
            pipe.srem(self._k("owner", room.owner, "rooms"), room.id)
            pipe.srem(self._k("rooms", "public"), room.id)
            pipe.zrem(self._k("rooms", "empty"), room.id)
            pipe.delete(
                self._k("room", room.id),
                self._k("room", room.id, "allowed"),
                self._k("room", room.id, "sids"),
            )
            pipe.execute()
        self.log.drop(room.id)
        return sids

    # -- presence ---------------------------------------------------------------------------

    def register_socket(
        self, sid: str, user_id: str, username: str, instance: str, max_per_user: int
    ) -> bool:
        """Record the socket; False (and nothing recorded) when the user would have more
        than ``max_per_user`` sockets. Added, then counted, then undone if over: concurrent
        connects can never exceed the cap."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(
                self._k("sid", sid),
                mapping={"user_id": user_id, "username": username, "instance": instance},
            )
            pipe.sadd(self._k("instance", instance, "sids"), sid)
            pipe.sadd(self._k("user", user_id, "sids"), sid)
            pipe.scard(self._k("user", user_id, "sids"))
            count = pipe.execute()[-1]
        if count <= max_per_user:
            return True
        with self.client.pipeline(transaction=True) as pipe:
            pipe.srem(self._k("user", user_id, "sids"), sid)
            pipe.srem(self._k("instance", instance, "sids"), sid)
            pipe.delete(self._k("sid", sid))
            pipe.execute()
        return False

    def enter(self, room: Room, sid: str, user_id: str) -> None:
        with self.client.pipeline(transaction=True) as pipe:
            pipe.sadd(self._k("room", room.id, "sids"), sid)
            pipe.sadd(self._k("sid", sid, "rooms"), room.id)
            pipe.sadd(self._k("user", user_id, "rooms"), room.id)
            pipe.zrem(self._k("rooms", "empty"), room.id)
            pipe.execute()

    def leave(self, room_id: str, sid: str) -> None:
        with self.client.pipeline(transaction=True) as pipe:
            pipe.srem(self._k("room", room_id, "sids"), sid)
            pipe.srem(self._k("sid", sid, "rooms"), room_id)
            pipe.execute()
        self._mark_if_empty([room_id])

    def _mark_if_empty(self, room_ids: list[str]) -> None:
        """Note when rooms became empty; :meth:`expire_empty` deletes them after the TTL."""
        if not room_ids:
            return
        with self.client.pipeline(transaction=False) as pipe:
            for room_id in room_ids:
                pipe.scard(self._k("room", room_id, "sids"))
            counts = pipe.execute()
        empty = {r: time.time() for r, n in zip(room_ids, counts, strict=True) if n == 0}
        if empty:
            self.client.zadd(self._k("rooms", "empty"), empty, nx=True)

    def expire_empty(self, ttl: float, batch: int = 100) -> int:
        """Delete rooms empty for longer than ``ttl`` seconds (up to ``batch`` a call)."""
        key = self._k("rooms", "empty")
        due = self.client.zrangebyscore(key, 0, time.time() - ttl, start=0, num=batch)
        deleted = 0
        for raw in due:
            room_id = _text(raw)
            room = self.get(room_id)
            if room is not None and self.client.scard(self._k("room", room_id, "sids")) == 0:
                self.delete(room)
                deleted += 1
            else:
                self.client.zrem(key, room_id)
        return deleted

    def is_in(self, room_id: str, sid: str) -> bool:
        return bool(self.client.sismember(self._k("room", room_id, "sids"), sid))

    def members(self, room_id: str) -> list[dict[str, str]]:
        """``{user_id, username}`` of every user with a socket in the room, on any instance."""
        sids = sorted(_text(s) for s in self.client.smembers(self._k("room", room_id, "sids")))
        with self.client.pipeline(transaction=False) as pipe:
            for sid in sids:
                pipe.hmget(self._k("sid", sid), "user_id", "username")
            rows = pipe.execute()
        users: dict[str, str] = {}
        for user_id, username in rows:
            if user_id is not None:
                users.setdefault(_text(user_id), _text(username or b""))
        return [{"user_id": uid, "username": name} for uid, name in sorted(users.items())]

    def user_present(self, room_id: str, user_id: str, except_sid: str = "") -> bool:
        """Whether ``user_id`` still has another socket in the room."""
        sids = [_text(s) for s in self.client.smembers(self._k("room", room_id, "sids"))]
        others = [sid for sid in sids if sid != except_sid]
        with self.client.pipeline(transaction=False) as pipe:
            for sid in others:
                pipe.hget(self._k("sid", sid), "user_id")
            owners = pipe.execute()
        return any(owner is not None and _text(owner) == user_id for owner in owners)

    def drop_socket(self, sid: str) -> tuple[dict[str, str], list[str]]:
        """Remove a socket's presence everywhere; returns its user and the rooms it was in."""
        info = {_text(k): _text(v) for k, v in self.client.hgetall(self._k("sid", sid)).items()}
        rooms = [_text(r) for r in self.client.smembers(self._k("sid", sid, "rooms"))]
        with self.client.pipeline(transaction=True) as pipe:
            for room_id in rooms:
                pipe.srem(self._k("room", room_id, "sids"), sid)
            if info.get("instance"):
                pipe.srem(self._k("instance", info["instance"], "sids"), sid)
            if info.get("user_id"):
                pipe.srem(self._k("user", info["user_id"], "sids"), sid)
            pipe.delete(self._k("sid", sid), self._k("sid", sid, "rooms"))
            pipe.execute()
        self._mark_if_empty(rooms)
        return info, rooms

    # -- instances ------------------------------------------------------------------------

    def heartbeat(self, instance: str, ttl: float) -> bool:
        """Mark the instance alive for ``ttl`` seconds; True when it was not listed (its first
        heartbeat, or another instance took it for dead and removed its presence)."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.sadd(self._k("instances"), instance)
            pipe.set(self._k("instance", instance, "alive"), 1, px=int(ttl * 1000))
            added, _ = pipe.execute()
        return bool(added)

    def restore_socket(
        self, sid: str, user_id: str, username: str, instance: str, room_ids: Iterable[str]
    ) -> None:
        """Record a live socket's presence again, in those of ``room_ids`` that still exist
        (after its instance was taken for dead)."""
        candidates = list(room_ids)
        with self.client.pipeline(transaction=False) as pipe:
            for room_id in candidates:
                pipe.exists(self._k("room", room_id))
            rooms = [r for r, found in zip(candidates, pipe.execute(), strict=True) if found]
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(
                self._k("sid", sid),
                mapping={"user_id": user_id, "username": username, "instance": instance},
            )
            pipe.sadd(self._k("instance", instance, "sids"), sid)
            pipe.sadd(self._k("user", user_id, "sids"), sid)
            for room_id in rooms:
                pipe.sadd(self._k("room", room_id, "sids"), sid)
                pipe.sadd(self._k("sid", sid, "rooms"), room_id)
                pipe.zrem(self._k("rooms", "empty"), room_id)
            pipe.execute()

    def dead_instances(self) -> list[str]:
        instances = sorted(_text(i) for i in self.client.smembers(self._k("instances")))
        with self.client.pipeline(transaction=False) as pipe:
            for instance in instances:
                pipe.exists(self._k("instance", instance, "alive"))
            alive = pipe.execute()
        return [i for i, up in zip(instances, alive, strict=True) if not up]

    def claim_reap(self, instance: str) -> bool:
        """One instance cleans up after a dead one; the claim expires if it dies too."""
        return bool(self.client.set(self._k("instance", instance, "reaping"), 1, nx=True, ex=30))

    def instance_sids(self, instance: str) -> list[str]:
        return [_text(s) for s in self.client.smembers(self._k("instance", instance, "sids"))]

    def forget_instance(self, instance: str) -> None:
        with self.client.pipeline(transaction=True) as pipe:
            pipe.srem(self._k("instances"), instance)
            pipe.delete(
                self._k("instance", instance, "sids"),
                self._k("instance", instance, "alive"),
                self._k("instance", instance, "reaping"),
            )
            pipe.execute()
