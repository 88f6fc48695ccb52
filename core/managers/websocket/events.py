"""The room events of docs/websockets.md ("Events"), typed: each declared with
``events.on`` (payload and ack models, the problems it answers) and answered through the ack;
the server events of the rooms declared with ``events.emits``."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

from flask_socketio import join_room, leave_room
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from core.errors import Conflict, Forbidden, NotFound, NotInRoom, ValidationFailed
from core.managers.database.json import to_json_compatible

if TYPE_CHECKING:
    from core.managers.websocket.manager import WebSocketManager
    from core.managers.websocket.typed import SocketSession

NAME_MAX = 64
BODY_MAX_BYTES = 4096
ID_MAX = 64

RoomId = Annotated[str, Field(min_length=1, max_length=ID_MAX)]
UserId = Annotated[str, Field(min_length=1, max_length=ID_MAX)]


def _body_bytes(body: str) -> str:
    if len(body.encode()) > BODY_MAX_BYTES:
        raise ValueError(f"must be at most {BODY_MAX_BYTES} bytes of UTF-8")
    return body


# -- payloads -----------------------------------------------------------------------------


class NewRoom(BaseModel):
    #: Shown to everyone who may join; not blank.
    name: str = Field(min_length=1, max_length=NAME_MAX, pattern=r"\S")
    #: Only the owner and ``members`` may join a private room.
    private: bool = False
    #: Users invited to a private room (owner included, at most ``SOCKETIO_MAX_ROOM_MEMBERS``).
    members: list[UserId] = Field(default_factory=list)


class RoomRef(BaseModel):
    room_id: RoomId


class NewMessage(BaseModel):
    room_id: RoomId
    #: 1 to 4096 bytes of UTF-8 text.
    body: Annotated[
        str, Field(min_length=1, max_length=BODY_MAX_BYTES), AfterValidator(_body_bytes)
    ]


# -- answers ------------------------------------------------------------------------------


class Room(BaseModel):
    id: str
    name: str
    private: bool
    owner: str


class Member(BaseModel):
    user_id: str
    username: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    id: str
    room_id: str
    sender: Member = Field(alias="from")
    body: str
    #: When the server accepted it (ISO 8601, UTC).
    ts: str


class Created(BaseModel):
    room: Room


class Joined(BaseModel):
    room: Room
    #: Who is in the room now, on any instance.
    members: list[Member]


class Sent(BaseModel):
    message: ChatMessage


class RoomList(BaseModel):
    rooms: list[Room]
    #: Some rooms were left out (more than ``SOCKETIO_LIST_ROOMS_MAX``).
    more: bool


class Members(BaseModel):
    members: list[Member]


class Presence(BaseModel):
    room_id: str
    user: Member


class RoomClosed(BaseModel):
    room_id: str


_PRIVATE = {"NOT_FOUND": 404, "FORBIDDEN": 403}


def register(ws: WebSocketManager) -> None:
    """Declare the room events on ``ws.events``."""
    events = ws.events
    rooms = ws.rooms
    hooks = ws.hooks
    settings = ws.settings
    members_max = settings.socketio_max_room_members - 1  # the owner is a member too

    events.emits("message", ChatMessage, summary="A message sent to a room the socket is in.")
    events.emits("user_joined", Presence, summary="A user's first socket joined the room.")
    events.emits("user_left", Presence, summary="A user's last socket left the room.")
    events.emits("room_closed", RoomClosed, summary="The owner closed the room.")

    def get_room(room_id: str) -> Any:
        room = rooms.get(room_id)
        if room is None:
            raise NotFound("No such room.")
        return room

    @events.on(
        "create_room",
        payload=NewRoom,
        ack=Created,
        errors={"TOO_MANY_ROOMS": 409},
    )
    def create_room(session: SocketSession, data: NewRoom) -> dict[str, Any]:
        """Create a room; its creator joins it."""
        if len(data.members) > members_max:
            message = f"must have at most {members_max} items"
            raise ValidationFailed([{"field": "/members", "message": message}])
        room = rooms.create(
            data.name.strip(),
            data.private,
            session.user_id,
            data.members,
            settings.socketio_max_rooms_per_owner,
        )
        if room is None:
            raise Conflict(
                f"You own {settings.socketio_max_rooms_per_owner} rooms; close one first.",
                code="TOO_MANY_ROOMS",
            )
        join_room(room.id)
        rooms.enter(room, session.sid, session.user_id)
        hooks.emit("room.created", room=room.public(), user=session.user)
        hooks.emit("room.joined", room=room.public(), user=session.user)
        return {"room": room.public()}

    @events.on("join_room", payload=RoomRef, ack=Joined, errors=_PRIVATE)
    def join(session: SocketSession, data: RoomRef) -> dict[str, Any]:
        """Join a room (a private one: the owner and its members only)."""
        room = get_room(data.room_id)
        if not rooms.may_join(room, session.user_id):
            raise Forbidden("This room is private.", code="FORBIDDEN")
        already = rooms.user_present(room.id, session.user_id)
        join_room(room.id)
        rooms.enter(room, session.sid, session.user_id)
        if not already:
            ws.emit(
                "user_joined",
                {"room_id": room.id, "user": session.user},
                room=room.id,
                skip_sid=session.sid,
            )
        hooks.emit("room.joined", room=room.public(), user=session.user)
        return {"room": room.public(), "members": rooms.members(room.id)}

    @events.on("leave_room", payload=RoomRef, errors={"NOT_IN_ROOM": 403})
    def leave(session: SocketSession, data: RoomRef) -> None:
        """Leave a room this socket is in."""
        room_id = data.room_id
        if not rooms.is_in(room_id, session.sid):
            raise NotInRoom("You are not in this room.")
        leave_room(room_id)
        rooms.leave(room_id, session.sid)
        if not rooms.user_present(room_id, session.user_id):
            ws.emit("user_left", {"room_id": room_id, "user": session.user}, room=room_id)
        hooks.emit("room.left", room_id=room_id, user=session.user)

    @events.on("send_message", payload=NewMessage, ack=Sent, errors={"NOT_IN_ROOM": 403})
    def send_message(session: SocketSession, data: NewMessage) -> dict[str, Any]:
        """Send a message to a room this socket is in; everyone in it gets ``message``."""
        room_id, body = data.room_id, data.body
        if not rooms.is_in(room_id, session.sid):
            raise NotInRoom("Join the room before sending to it.")
        message = {
            "id": secrets.token_urlsafe(12),
            "room_id": room_id,
            "from": session.user,
            "body": body,
            "ts": to_json_compatible(datetime.now(UTC)),
        }
        ws.emit("message", message, room=room_id)
        return {"message": message}

    @events.on("list_rooms", ack=RoomList)
    def list_rooms(session: SocketSession, data: None) -> dict[str, Any]:
        """The caller's own rooms, then public ones, at most ``SOCKETIO_LIST_ROOMS_MAX``."""
        found, more = rooms.list_for(session.user_id, settings.socketio_list_rooms_max)
        return {"rooms": [room.public() for room in found], "more": more}

    @events.on("forget_room", payload=RoomRef, errors=_PRIVATE)
    def forget_room(session: SocketSession, data: RoomRef) -> None:
        """Leave a room for good: off its member list (private) and the caller's list."""
        room = get_room(data.room_id)
        if room.owner == session.user_id:
            raise Forbidden("The owner cannot forget a room; close it.", code="FORBIDDEN")
        if rooms.is_in(room.id, session.sid):
            leave(session, data)
        rooms.forget(room, session.user_id)

    @events.on("room_members", payload=RoomRef, ack=Members, errors=_PRIVATE)
    def room_members(session: SocketSession, data: RoomRef) -> dict[str, Any]:
        """Who is in a room, on every instance."""
        room = get_room(data.room_id)
        if not rooms.may_join(room, session.user_id):
            raise Forbidden("This room is private.", code="FORBIDDEN")
        return {"members": rooms.members(room.id)}

    @events.on("close_room", payload=RoomRef, errors=_PRIVATE)
    def close_room(session: SocketSession, data: RoomRef) -> None:
        """Close a room the caller owns: everyone in it gets ``room_closed``."""
        room = get_room(data.room_id)
        if room.owner != session.user_id:
            raise Forbidden("Only the owner can close a room.", code="FORBIDDEN")
        ws.emit("room_closed", {"room_id": room.id}, room=room.id)
        rooms.delete(room)
        ws.socketio.close_room(room.id)
