"""The public names of the WebSocketManager, its typed events and the server events of its
rooms; the code is in :mod:`.manager`, :mod:`.typed` and :mod:`.models`."""

from core.managers.websocket.manager import WebSocketManager
from core.managers.websocket.models import ChatMessage, Member, Presence, RoomPresence
from core.managers.websocket.presence import NAMESPACE
from core.managers.websocket.roomlog import Recovery
from core.managers.websocket.typed import ClientEvent, ServerEvent, SocketEvents, SocketSession

__all__ = [
    "NAMESPACE",
    "ChatMessage",
    "ClientEvent",
    "Member",
    "Presence",
    "Recovery",
    "RoomPresence",
    "ServerEvent",
    "SocketEvents",
    "SocketSession",
    "WebSocketManager",
]
