"""The chat rooms module (Socket.IO events); the code is in :mod:`.module`."""

from modules.rooms.module import RoomsModule

__all__ = ["RoomsModule"]
