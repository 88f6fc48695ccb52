"""The chat rooms: create, join (with recovery), leave, send, history, list, forget, members
and close, as Socket.IO events (docs/websockets.md, "Events").

A module like any other, built only on what every module author has: ``SocketEvents`` to
declare its events, the WebSocketManager's ``join``, ``leave``, ``emit`` (room messages are
numbered and kept by the framework's room log), ``members``, ``history`` and ``close_room``,
the ``socket.room_empty`` hook, and Redis for its records (:mod:`.store`). Its settings
(:mod:`.settings`) keep the names they had in core (``SOCKETIO_MAX_ROOMS_PER_OWNER``,
``SOCKETIO_MAX_ROOM_MEMBERS``, ``SOCKETIO_LIST_ROOMS_MAX``). ``MODULES_DISABLED=rooms``: no
room events and none of its settings; the framework's rooms (``message``, ``user_joined``,
``user_left``) stay for other modules.
"""

from __future__ import annotations

from core.managers.websocket import SocketEvents
from core.module import BaseModule, ModuleHost

from .events import register
from .settings import RoomsSettings
from .store import RoomStore


class RoomsModule(BaseModule):
    settings_model = RoomsSettings

    def __init__(self, name: str, app_manager: ModuleHost) -> None:
        super().__init__(name, app_manager)
        self.store = RoomStore(app_manager.redis)

    def register_socket_handlers(self, events: SocketEvents) -> None:
        host = self.app_manager
        register(events, host.websocket, self.store, host.hooks, host.settings_of(RoomsSettings))
