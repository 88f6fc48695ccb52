"""python-socketio's room bookkeeping without its scans over every socket.

The library's client manager (``socketio.base_manager.BaseManager``) keeps
``rooms[namespace][room][sid]`` and answers "which rooms is this socket in" by scanning
every room of the namespace, and every socket has a room of its own: a disconnect copies
and scans a dict of all the worker's sockets, and keeps the sockets connecting or leaving in
lists it searches and removes from. Each is O(sockets), so 10,000 sockets leaving at once
(a network blip, a load balancer restart) cost O(sockets²) in one loop turn: measured, the
worker stopped answering its arbiter for 30 s and was killed. :class:`IndexedRooms` keeps
the rooms of each socket next to the library's structures and hands the library sets that
look like its lists, so each of those operations costs O(rooms of that socket).

It overrides the library's ``basic_*`` methods (the only writers of ``rooms``), the two
that create the pending lists, and ``get_rooms``; the rest of the library is unchanged.
Mixed in ahead of the library's manager (``RedisQueue``).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Any

Room = Hashable | None  # None is the room of every connected socket, a sid its own room


class SidList:
    """A list of sids as the library uses it (``append``, ``remove``, ``in``, ``len``),
    with O(1) membership and removal; duplicates are counted, as a list would keep them."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def append(self, sid: str) -> None:
        self._counts[sid] = self._counts.get(sid, 0) + 1

    def remove(self, sid: str) -> None:
        count = self._counts.get(sid)
        if count is None:
            raise ValueError(f"{sid!r} is not in the list")
        if count == 1:
            del self._counts[sid]
        else:
            self._counts[sid] = count - 1

    def __contains__(self, sid: object) -> bool:
        return sid in self._counts

    def __len__(self) -> int:
        return sum(self._counts.values())

    def __iter__(self) -> Iterator[str]:
        for sid, count in self._counts.items():
            for _ in range(count):
                yield sid


class IndexedRooms:
    """Mixin for a ``socketio`` client manager: rooms per socket, pending sets."""

    rooms: dict[str, dict[Room, Any]]
    pending_connect: dict[str, Any]
    pending_disconnect: dict[str, Any]
    callbacks: dict[str, Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: (namespace, sid) -> the rooms it is in, in the order entered (a dict as a set).
        self._rooms_of: dict[tuple[str, str], dict[Room, None]] = {}

    def basic_enter_room(
        self, sid: str, namespace: str, room: Room, eio_sid: str | None = None
    ) -> None:
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)  # type: ignore[misc]
        self._rooms_of.setdefault((namespace, sid), {})[room] = None

    def basic_leave_room(self, sid: str, namespace: str, room: Room) -> None:
        super().basic_leave_room(sid, namespace, room)  # type: ignore[misc]
        joined = self._rooms_of.get((namespace, sid))
        if joined is not None:
            joined.pop(room, None)
            if not joined:
                del self._rooms_of[(namespace, sid)]

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        """As the library's: leave every room, forget callbacks and pending marks; only the
        socket's own rooms are visited."""
        if namespace not in self.rooms:
            return
        for room in list(self._rooms_of.get((namespace, sid), ())):
            self.basic_leave_room(sid, namespace, room)
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            sids = pending.get(namespace)
            if sids is not None and sid in sids:
                sids.remove(sid)
                if len(sids) == 0:
                    del pending[namespace]

    def get_rooms(self, sid: str, namespace: str) -> list[Room]:
        """The rooms a socket is in (its own included, the namespace's ``None`` not)."""
        return [room for room in self._rooms_of.get((namespace, sid), ()) if room is not None]

    def pre_connect(self, eio_sid: str, namespace: str) -> str | None:
        self.pending_connect.setdefault(namespace, SidList())
        return super().pre_connect(eio_sid, namespace)  # type: ignore[misc, no-any-return]

    def pre_disconnect(self, sid: str, namespace: str) -> str | None:
        self.pending_disconnect.setdefault(namespace, SidList())
        return super().pre_disconnect(sid, namespace)  # type: ignore[misc, no-any-return]
