"""The chat room events of docs/websockets.md ("Events"), typed: each declared with
``events.on`` (payload and ack models, the problems it answers) and answered through the ack;
``room_closed`` declared with ``events.emits``. Built on the WebSocketManager's public calls
only: messages go through the room log (``ws.emit("message", ...)``: ``seq`` and history),
joins through ``ws.join`` (presence, and recovery with ``since``), leaves through
``ws.leave``, pages of history through ``ws.history``, closing through ``ws.close_room``."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field

from core.errors import Conflict, Forbidden, NotFound, NotInRoom, ValidationFailed
from core.managers.hooks import HooksManager
from core.managers.websocket import (
    ChatMessage,
    Member,
    SocketEvents,
    SocketSession,
    WebSocketManager,
)

from .settings import RoomsSettings
from .store import RoomRecord, RoomStore

NAME_MAX = 64
BODY_MAX_BYTES = 4096
ID_MAX = 64
HISTORY_PAGE = 50
HISTORY_LIMIT = 100

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


class JoinRoom(BaseModel):
    room_id: RoomId
    #: The last ``seq`` the client holds of this room: the ack brings what came after it.
    since: int | None = Field(None, ge=0)


class HistoryPage(BaseModel):
    room_id: RoomId
    #: A ``seq``: the messages older than it (without it: the newest ones).
    before: int | None = Field(None, ge=0)
    limit: int = Field(HISTORY_PAGE, ge=1, le=HISTORY_LIMIT)


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


class Created(BaseModel):
    room: Room
    #: The room's latest ``seq`` (0: no message yet).
    seq: int


class Joined(BaseModel):
    room: Room
    #: Who is in the room now, on any instance: everyone, or ``SOCKETIO_PRESENCE_EVENTS_MAX``
    #: of them in a larger room.
    members: list[Member]
    #: How many users are in the room (more than ``members`` holds in a large room).
    member_count: int
    #: The room's latest ``seq``; live messages continue at ``seq + 1``.
    seq: int
    #: Whether ``missed`` holds every message after ``since`` (false: the history no longer
    #: reaches back; ``missed`` is what it still holds).
    recovered: bool
    #: The room's messages after ``since``, oldest first (empty without ``since``).
    missed: list[ChatMessage]


class History(BaseModel):
    #: Oldest first.
    messages: list[ChatMessage]
    #: The history holds older messages than these.
    more: bool


class Sent(BaseModel):
    message: ChatMessage


class RoomList(BaseModel):
    rooms: list[Room]
    #: Some rooms were left out (more than ``SOCKETIO_LIST_ROOMS_MAX``).
    more: bool


class Members(BaseModel):
    #: Everyone in the room, or ``SOCKETIO_PRESENCE_EVENTS_MAX`` of them in a larger room.
    members: list[Member]
    #: How many users are in the room.
    member_count: int


class RoomClosed(BaseModel):
    room_id: str


_PRIVATE = {"NOT_FOUND": 404, "FORBIDDEN": 403}


def register(
    events: SocketEvents,
    ws: WebSocketManager,
    rooms: RoomStore,
    hooks: HooksManager,
    settings: RoomsSettings,
) -> None:
    """Declare the chat room events on ``events``."""
    members_max = settings.max_room_members - 1  # the owner is a member too

    events.emits("room_closed", RoomClosed, summary="The owner closed the room.")

    def get_room(room_id: str) -> RoomRecord:
        room = rooms.get(room_id)
        if room is None:
            raise NotFound("No such room.")
        return room

    def members_of(room_id: str) -> dict[str, Any]:
        return {"members": ws.members(room_id), "member_count": ws.member_count(room_id)}

    def joinable(room_id: str, session: SocketSession) -> RoomRecord:
        room = get_room(room_id)
        if not rooms.may_join(room, session.user_id):
            raise Forbidden("This room is private.", code="FORBIDDEN")
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
            settings.max_rooms_per_owner,
        )
        if room is None:
            raise Conflict(
                f"You own {settings.max_rooms_per_owner} rooms; close one first.",
                code="TOO_MANY_ROOMS",
            )
        joined = ws.join(session, room.id)
        hooks.emit("room.created", room=room.public(), user=session.user)
        hooks.emit("room.joined", room=room.public(), user=session.user)
        return {"room": room.public(), "seq": joined.seq}

    @events.on("join_room", payload=JoinRoom, ack=Joined, errors=_PRIVATE)
    def join(session: SocketSession, data: JoinRoom) -> dict[str, Any]:
        """Join a room (a private one: the owner and its members only); with ``since``, the
        ack brings the messages after it."""
        room = joinable(data.room_id, session)
        joined = ws.join(session, room.id, data.since)
        rooms.joined(room, session.user_id)
        hooks.emit("room.joined", room=room.public(), user=session.user)
        return {
            "room": room.public(),
            **members_of(room.id),
            "seq": joined.seq,
            "recovered": joined.recovered,
            "missed": joined.missed,
        }

    @events.on("leave_room", payload=RoomRef, errors={"NOT_IN_ROOM": 403})
    def leave(session: SocketSession, data: RoomRef) -> None:
        """Leave a room this socket is in."""
        if not ws.leave(session, data.room_id):
            raise NotInRoom("You are not in this room.")
        hooks.emit("room.left", room_id=data.room_id, user=session.user)

    @events.on("send_message", payload=NewMessage, ack=Sent, errors={"NOT_IN_ROOM": 403})
    def send_message(session: SocketSession, data: NewMessage) -> dict[str, Any]:
        """Send a message to a room this socket is in; everyone in it gets ``message``."""
        if not ws.is_in(data.room_id, session.sid):
            raise NotInRoom("Join the room before sending to it.")
        sent = {"from": session.user, "body": data.body}
        return {"message": ws.emit("message", sent, room=data.room_id)}

    @events.on("room_history", payload=HistoryPage, ack=History, errors=_PRIVATE)
    def room_history(session: SocketSession, data: HistoryPage) -> dict[str, Any]:
        """Older messages of a room, a page at a time (members and allowed joiners)."""
        room = joinable(data.room_id, session)
        messages, more = ws.history(room.id, data.before, data.limit)
        return {"messages": messages, "more": more}

    @events.on("list_rooms", ack=RoomList)
    def list_rooms(session: SocketSession, data: None) -> dict[str, Any]:
        """The caller's own rooms, then public ones, at most ``SOCKETIO_LIST_ROOMS_MAX``."""
        found, more = rooms.list_for(session.user_id, settings.list_rooms_max)
        return {"rooms": [room.public() for room in found], "more": more}

    @events.on("forget_room", payload=RoomRef, errors=_PRIVATE)
    def forget_room(session: SocketSession, data: RoomRef) -> None:
        """Leave a room for good: off its member list (private) and the caller's list."""
        room = get_room(data.room_id)
        if room.owner == session.user_id:
            raise Forbidden("The owner cannot forget a room; close it.", code="FORBIDDEN")
        if ws.leave(session, room.id):
            hooks.emit("room.left", room_id=room.id, user=session.user)
        rooms.forget(room, session.user_id)

    @events.on("room_members", payload=RoomRef, ack=Members, errors=_PRIVATE)
    def room_members(session: SocketSession, data: RoomRef) -> dict[str, Any]:
        """Who is in a room, on every instance (at most ``SOCKETIO_PRESENCE_EVENTS_MAX`` of
        them) and how many."""
        room = joinable(data.room_id, session)
        return members_of(room.id)

    @events.on("close_room", payload=RoomRef, errors=_PRIVATE)
    def close_room(session: SocketSession, data: RoomRef) -> None:
        """Close a room the caller owns: everyone in it gets ``room_closed``."""
        room = get_room(data.room_id)
        if room.owner != session.user_id:
            raise Forbidden("Only the owner can close a room.", code="FORBIDDEN")
        ws.emit("room_closed", {"room_id": room.id}, room=room.id)
        delete(room)

    def delete(room: RoomRecord) -> None:
        rooms.delete(room)
        ws.close_room(room.id)

    def expired(room_id: str, **_: Any) -> None:
        """``socket.room_empty``: a room nobody was in for ``SOCKETIO_ROOM_EMPTY_TTL``."""
        room = rooms.get(room_id)
        if room is not None:
            delete(room)

    hooks.register("socket.room_empty", expired)
