"""The public names of the WebSocketManager; the code is in :mod:`.manager`."""

from core.managers.websocket.manager import (
    SocketSession,
    WebSocketManager,
)

__all__ = [
    "SocketSession",
    "WebSocketManager",
]
