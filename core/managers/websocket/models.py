"""The server events of the framework's room machinery, whichever module's rooms they are in:
``message`` (a room message of the room log, :meth:`WebSocketManager.emit`), ``user_joined``
and ``user_left`` (presence, :meth:`WebSocketManager.join` and :meth:`~WebSocketManager.leave`
and a socket's disconnect), and ``room_presence`` in their place in a large room."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Member(BaseModel):
    user_id: str
    username: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    id: str
    room_id: str
    #: Its number in the room: exactly one more than the room's previous message.
    seq: int
    sender: Member = Field(alias="from")
    body: str
    #: When the server accepted it (ISO 8601, UTC).
    ts: str


class Presence(BaseModel):
    room_id: str
    user: Member


class RoomPresence(BaseModel):
    room_id: str
    #: Users with a socket in the room now, on any instance.
    member_count: int
    #: Every one of them, when the room is back at ``SOCKETIO_PRESENCE_EVENTS_MAX`` users or
    #: fewer (its ``user_joined``/``user_left`` start again from this list); absent while it
    #: is larger.
    members: list[Member] | None = None
