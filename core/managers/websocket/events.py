"""The room events of docs/websockets.md ("Events"), each answered through the ack."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from flask_socketio import join_room, leave_room
from jsonschema.protocols import Validator

from core.edge.validation import close_objects, compile_schema, validate
from core.errors import Conflict, Forbidden, NotFound, NotInRoom, ValidationFailed
from core.managers.database.json import to_json_compatible

if TYPE_CHECKING:
    from core.managers.websocket.manager import SocketSession, WebSocketManager

NAME_MAX = 64
BODY_MAX_BYTES = 4096
_USER_ID = {"type": "string", "minLength": 1, "maxLength": 64}


def create_room_schema(members_max: int) -> Validator:
    """``create_room``'s data; ``members_max`` from ``SOCKETIO_MAX_ROOM_MEMBERS``."""
    return compile_schema(
        close_objects(
            {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": NAME_MAX,
                        "pattern": r"\S",
                    },
                    "private": {"type": "boolean"},
                    "members": {"type": "array", "maxItems": members_max, "items": _USER_ID},
                },
            }
        )
    )


def _room_id(data: dict[str, Any]) -> str:
    room_id = data.get("room_id")
    if not isinstance(room_id, str) or not 0 < len(room_id) <= 64:
        raise ValidationFailed([{"field": "/room_id", "message": "must be a room id"}])
    return room_id


def register(ws: WebSocketManager) -> None:
    rooms = ws.rooms
    hooks = ws.hooks
    settings = ws.settings
    # The owner is a member too.
    create_room_data = create_room_schema(settings.socketio_max_room_members - 1)

    def get_room(room_id: str) -> Any:
        room = rooms.get(room_id)
        if room is None:
            raise NotFound("No such room.")
        return room

    @ws.event("create_room")
    def create_room(session: SocketSession, data: dict[str, Any]) -> dict[str, Any]:
        validate(create_room_data, data)  # the actions' JSON-Schema path: one error per field
        name, private = data["name"], data.get("private", False)
        members = data.get("members", [])
        room = rooms.create(
            str(name).strip(),
            bool(private),
            session.user_id,
            members,
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

    @ws.event("join_room")
    def join(session: SocketSession, data: dict[str, Any]) -> dict[str, Any]:
        room = get_room(_room_id(data))
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

    @ws.event("leave_room")
    def leave(session: SocketSession, data: dict[str, Any]) -> dict[str, Any]:
        room_id = _room_id(data)
        if not rooms.is_in(room_id, session.sid):
            raise NotInRoom("You are not in this room.")
        leave_room(room_id)
        rooms.leave(room_id, session.sid)
        if not rooms.user_present(room_id, session.user_id):
            ws.emit("user_left", {"room_id": room_id, "user": session.user}, room=room_id)
        hooks.emit("room.left", room_id=room_id, user=session.user)
        return {}

    @ws.event("send_message")
    def send_message(session: SocketSession, data: dict[str, Any]) -> dict[str, Any]:
        room_id = _room_id(data)
        body = data.get("body")
        if not isinstance(body, str) or not body or len(body.encode()) > BODY_MAX_BYTES:
            raise ValidationFailed(
                [{"field": "/body", "message": f"must be 1-{BODY_MAX_BYTES} bytes of text"}]
            )
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

    @ws.event("list_rooms")
    def list_rooms(session: SocketSession, data: dict[str, Any]) -> dict[str, Any]:
        found, more = rooms.list_for(session.user_id, settings.socketio_list_rooms_max)
        return {"rooms": [room.public() for room in found], "more": more}

    @ws.event("forget_room")
    def forget_room(session: SocketSession, data: dict[str, Any]) -> dict[str, Any]:
        """Leave a room for good: off its member list (private) and the caller's list."""
        room = get_room(_room_id(data))
        if room.owner == session.user_id:
            raise Forbidden("The owner cannot forget a room; close it.", code="FORBIDDEN")
        if rooms.is_in(room.id, session.sid):
            leave(session, data)
        rooms.forget(room, session.user_id)
        return {}

    @ws.event("room_members")
    def room_members(session: SocketSession, data: dict[str, Any]) -> dict[str, Any]:
        room = get_room(_room_id(data))
        if not rooms.may_join(room, session.user_id):
            raise Forbidden("This room is private.", code="FORBIDDEN")
        return {"members": rooms.members(room.id)}

    @ws.event("close_room")
    def close_room(session: SocketSession, data: dict[str, Any]) -> dict[str, Any]:
        room = get_room(_room_id(data))
        if room.owner != session.user_id:
            raise Forbidden("Only the owner can close a room.", code="FORBIDDEN")
        ws.emit("room_closed", {"room_id": room.id}, room=room.id)
        rooms.delete(room)
        ws.socketio.close_room(room.id)
        return {}
