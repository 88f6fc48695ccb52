"""The chat rooms' records in Redis: what a room is, who may join it, whose lists it is on.

Keys (all ``RedisManager.key(NAMESPACE, ...)``: under the framework's ``ws:``, where they were
before the chat rooms became a module, so rooms and lists survive the upgrade):

- ``ws:room:<id>`` hash ``{id, name, private, owner, created_at}``;
- ``ws:room:<id>:allowed`` the owner and invited members of a private room;
- ``ws:rooms:public`` public room ids;
- ``ws:user:<uid>:rooms`` rooms a user owns or joined (never written by someone else: an
  invitation only lets a user join);
- ``ws:owner:<uid>:rooms`` rooms a user owns (the per-owner cap).

Who is in a room now (presence) and its messages (the room log) are the framework's
(``core/managers/websocket/presence.py``, ``roomlog.py``).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.managers.database.json import to_json_compatible
from core.managers.redis import RedisManager, text
from core.managers.websocket import NAMESPACE


@dataclass(frozen=True)
class RoomRecord:
    id: str
    name: str
    private: bool
    owner: str

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "private": self.private, "owner": self.owner}


def _room(data: dict[Any, Any]) -> RoomRecord:
    fields = {text(k): text(v) for k, v in data.items()}
    return RoomRecord(fields["id"], fields["name"], fields["private"] == "1", fields["owner"])


class RoomStore:
    def __init__(self, redis_manager: RedisManager) -> None:
        self.redis = redis_manager
        self.client = redis_manager.client

    def create(
        self, name: str, private: bool, owner: str, members: Iterable[str], max_owned: int
    ) -> RoomRecord | None:
        """The new room, or None when ``owner`` already owns ``max_owned`` rooms (counted
        after adding, then undone: concurrent creates cannot exceed the cap)."""
        room = RoomRecord(secrets.token_urlsafe(12), name, private, owner)
        allowed = {owner, *members}
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(
                self.redis.key(NAMESPACE, "room", room.id),
                mapping={
                    "id": room.id,
                    "name": name,
                    "private": "1" if private else "0",
                    "owner": owner,
                    "created_at": to_json_compatible(datetime.now(UTC)),
                },
            )
            if private:
                pipe.sadd(self.redis.key(NAMESPACE, "room", room.id, "allowed"), *allowed)
            else:
                pipe.sadd(self.redis.key(NAMESPACE, "rooms", "public"), room.id)
            pipe.sadd(self.redis.key(NAMESPACE, "user", owner, "rooms"), room.id)
            pipe.sadd(self.redis.key(NAMESPACE, "owner", owner, "rooms"), room.id)
            pipe.scard(self.redis.key(NAMESPACE, "owner", owner, "rooms"))
            owned = pipe.execute()[-1]
        if owned > max_owned:
            self.delete(room)
            return None
        return room

    def get(self, room_id: str) -> RoomRecord | None:
        data = self.client.hgetall(self.redis.key(NAMESPACE, "room", room_id))
        return _room(data) if data else None

    def may_join(self, room: RoomRecord, user_id: str) -> bool:
        if not room.private or user_id == room.owner:
            return True
        return bool(
            self.client.sismember(self.redis.key(NAMESPACE, "room", room.id, "allowed"), user_id)
        )

    def joined(self, room: RoomRecord, user_id: str) -> None:
        """The room is on the user's list from now on."""
        self.client.sadd(self.redis.key(NAMESPACE, "user", user_id, "rooms"), room.id)

    def list_for(self, user_id: str, limit: int) -> tuple[list[RoomRecord], bool]:
        """At most ``limit`` rooms: the user's own (owned or joined) first, then public ones;
        and whether there were more. Reads at most about ``limit`` ids of each set."""
        ids: list[str] = []
        more = False
        for key in (
            self.redis.key(NAMESPACE, "user", user_id, "rooms"),
            self.redis.key(NAMESPACE, "rooms", "public"),
        ):
            for raw in self.client.sscan_iter(key, count=limit):
                room_id = text(raw)
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
                pipe.hgetall(self.redis.key(NAMESPACE, "room", room_id))
            rows = pipe.execute()
        rooms = [_room(data) for data in rows if data]
        gone = [room_id for room_id, data in zip(ids, rows, strict=True) if not data]
        if gone:  # rooms deleted since the user joined them
            self.client.srem(self.redis.key(NAMESPACE, "user", user_id, "rooms"), *gone)
        return sorted(rooms, key=lambda room: (room.name, room.id)), more

    def forget(self, room: RoomRecord, user_id: str) -> None:
        """The user leaves the room's member list and their own list of rooms."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.srem(self.redis.key(NAMESPACE, "room", room.id, "allowed"), user_id)
            pipe.srem(self.redis.key(NAMESPACE, "user", user_id, "rooms"), room.id)
            pipe.execute()

    def delete(self, room: RoomRecord) -> None:
        """Remove the room's record and take it off every list."""
        allowed = self.client.smembers(self.redis.key(NAMESPACE, "room", room.id, "allowed"))
        with self.client.pipeline(transaction=True) as pipe:
            for user_id in {room.owner, *(text(a) for a in allowed)}:
                pipe.srem(self.redis.key(NAMESPACE, "user", user_id, "rooms"), room.id)
            pipe.srem(self.redis.key(NAMESPACE, "owner", room.owner, "rooms"), room.id)
            pipe.srem(self.redis.key(NAMESPACE, "rooms", "public"), room.id)
            pipe.delete(
                self.redis.key(NAMESPACE, "room", room.id),
                self.redis.key(NAMESPACE, "room", room.id, "allowed"),
            )
            pipe.execute()
