"""The public names of the WebSocketManager and its typed events; the code is in
:mod:`.manager` and :mod:`.typed`."""

from core.managers.websocket.manager import WebSocketManager
from core.managers.websocket.typed import ClientEvent, ServerEvent, SocketEvents, SocketSession

__all__ = [
    "ClientEvent",
    "ServerEvent",
    "SocketEvents",
    "SocketSession",
    "WebSocketManager",
]
