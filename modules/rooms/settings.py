"""The rooms module's settings. They were core settings before the chat rooms became a module
(docs/decisions.md, 89) and their names are a public contract, so each keeps its
``SOCKETIO_*`` name with ``env=`` instead of the module's ``ROOMS_`` prefix (docs/modules.md,
"Settings"). Read only while the module is enabled.

``SOCKETIO_ROOM_EMPTY_TTL`` stays a core setting: the framework's presence decides when a room
is empty and fires ``socket.room_empty`` for any module's rooms."""

from __future__ import annotations

from config.modules import ModuleSettings, setting


class RoomsSettings(ModuleSettings):
    #: Rooms one user may own at once (``TOO_MANY_ROOMS`` past it).
    max_rooms_per_owner: int = setting(20, env="SOCKETIO_MAX_ROOMS_PER_OWNER", ge=1)
    #: Members a private room may list (owner included).
    max_room_members: int = setting(100, env="SOCKETIO_MAX_ROOM_MEMBERS", ge=1)
    #: Most rooms ``list_rooms`` answers: the caller's own rooms first, then public ones
    #: (the answer sorted by name).
    list_rooms_max: int = setting(100, env="SOCKETIO_LIST_ROOMS_MAX", ge=1, le=1000)
