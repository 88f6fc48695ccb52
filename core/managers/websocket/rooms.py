"""Rooms, membership and presence in Redis, so they are true across instances.

Keys (all through ``RedisManager.key``):

- ``ws:room:<id>`` hash ``{id, name, private, owner, created_at}``;
  ``ws:room:<id>:allowed`` owner and members of a private room;
  ``ws:rooms:public`` public room ids; ``ws:user:<uid>:rooms`` rooms a user owns, is a
  member of or joined;
- presence: ``ws:room:<id>:sids`` sockets in the room; ``ws:sid:<sid>`` hash
  ``{user_id, username, instance}``; ``ws:sid:<sid>:rooms``; ``ws:instance:<iid>:sids``;
- instances: ``ws:instances`` and ``ws:instance:<iid>:alive`` (a heartbeat with a TTL).

A socket's presence is removed when it disconnects; an instance that stops heartbeating is
presumed crashed and any other instance removes its sockets' presence.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.managers.database.json import to_json_compatible
from core.managers.redis import RedisManager


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
    def __init__(self, redis_manager: RedisManager) -> None:
        self.redis = redis_manager
        self.client = redis_manager.client

    def _k(self, *parts: str) -> str:
        return self.redis.key("ws", *parts)

    # -- rooms ----------------------------------------------------------------------------

    def create(self, name: str, private: bool, owner: str, members: Iterable[str]) -> Room:
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
            for user_id in allowed if private else {owner}:
                pipe.sadd(self._k("user", user_id, "rooms"), room.id)
            pipe.execute()
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

    def list_for(self, user_id: str) -> list[Room]:
        """Public rooms and the rooms the user owns, is a member of, or joined."""
        ids = self.client.sunion([self._k("rooms", "public"), self._k("user", user_id, "rooms")])
        with self.client.pipeline(transaction=False) as pipe:
            for room_id in sorted(_text(i) for i in ids):
                pipe.hgetall(self._k("room", room_id))
            rows = pipe.execute()
        rooms = []
        for data in rows:
            if data:
                fields = {_text(k): _text(v) for k, v in data.items()}
                rooms.append(
                    Room(fields["id"], fields["name"], fields["private"] == "1", fields["owner"])
                )
        return rooms

    def delete(self, room: Room) -> list[str]:
        """Remove the room; returns the sockets that were in it."""
        sids = [_text(s) for s in self.client.smembers(self._k("room", room.id, "sids"))]
        allowed = self.client.smembers(self._k("room", room.id, "allowed"))
        with self.client.pipeline(transaction=True) as pipe:
            for sid in sids:
                pipe.srem(self._k("sid", sid, "rooms"), room.id)
            for user_id in {room.owner, *(_text(a) for a in allowed)}:
                pipe.srem(self._k("user", user_id, "rooms"), room.id)
            pipe.srem(self._k("rooms", "public"), room.id)
            pipe.delete(
                self._k("room", room.id),
                self._k("room", room.id, "allowed"),
                self._k("room", room.id, "sids"),
            )
            pipe.execute()
        return sids

    # -- presence ---------------------------------------------------------------------------

    def register_socket(self, sid: str, user_id: str, username: str, instance: str) -> None:
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(
                self._k("sid", sid),
                mapping={"user_id": user_id, "username": username, "instance": instance},
            )
            pipe.sadd(self._k("instance", instance, "sids"), sid)
            pipe.execute()

    def enter(self, room: Room, sid: str, user_id: str) -> None:
        with self.client.pipeline(transaction=True) as pipe:
            pipe.sadd(self._k("room", room.id, "sids"), sid)
            pipe.sadd(self._k("sid", sid, "rooms"), room.id)
            pipe.sadd(self._k("user", user_id, "rooms"), room.id)
            pipe.execute()

    def leave(self, room_id: str, sid: str) -> None:
        with self.client.pipeline(transaction=True) as pipe:
            pipe.srem(self._k("room", room_id, "sids"), sid)
            pipe.srem(self._k("sid", sid, "rooms"), room_id)
            pipe.execute()

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
            pipe.delete(self._k("sid", sid), self._k("sid", sid, "rooms"))
            pipe.execute()
        return info, rooms

    # -- instances ------------------------------------------------------------------------

    def heartbeat(self, instance: str, ttl: float) -> None:
        with self.client.pipeline(transaction=False) as pipe:
            pipe.sadd(self._k("instances"), instance)
            pipe.set(self._k("instance", instance, "alive"), 1, px=int(ttl * 1000))
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
