"""IndexedRooms keeps python-socketio's room bookkeeping exactly as the library does, only
without scanning every socket: the same random sequence of connects, room changes and
disconnects leaves both managers in the same state after every step."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
import socketio

from core.managers.websocket.membership import IndexedRooms, SidList


class _Eio:
    def __init__(self) -> None:
        self._ids = itertools.count()

    def generate_id(self) -> str:
        return f"sid{next(self._ids)}"


class _Server:
    def __init__(self) -> None:
        self.eio = _Eio()
        self.packet_class = socketio.packet.Packet

    def _send_packet(self, eio_sid: str, pkt: Any) -> None:
        """Where an emit with a callback sends its packet: nowhere (only the ack id counts)."""


class Indexed(IndexedRooms, socketio.Manager):  # type: ignore[misc]
    pass


def state(manager: Any, sids: list[str]) -> tuple[Any, ...]:
    rooms = {
        namespace: {room: dict(members) for room, members in by_room.items()}
        for namespace, by_room in manager.rooms.items()
    }
    pending = [
        {namespace: sorted(found) for namespace, found in table.items()}
        for table in (manager.pending_connect, manager.pending_disconnect)
    ]
    held = {
        (namespace, sid): sorted(map(str, manager.get_rooms(sid, namespace)))
        for namespace in ("/", "/chat")
        for sid in sids
    }
    connected = {
        (namespace, sid): manager.is_connected(sid, namespace)
        for namespace in ("/", "/chat")
        for sid in sids
    }
    return rooms, pending, held, connected, sorted(manager.callbacks)


@pytest.mark.parametrize("seed", range(20))
def test_the_same_operations_leave_the_same_state_as_the_library(seed: int) -> None:
    rng = random.Random(seed)
    plain, indexed = socketio.Manager(), Indexed()
    for manager in (plain, indexed):
        manager.set_server(_Server())
    sids: list[tuple[str, str]] = []  # (namespace, sid), the same in both managers
    for step in range(300):
        choice = rng.random()
        namespace = rng.choice(["/", "/chat"])
        if choice < 0.3 or not sids:
            eio_sid = f"eio{step}"
            found = [m.connect(eio_sid, namespace) for m in (plain, indexed)]
            assert found[0] == found[1]
            sids.append((namespace, found[0]))
            continue
        namespace, sid = rng.choice(sids)
        room = rng.choice(["a", "b", "c"])
        if choice < 0.5:
            for manager in (plain, indexed):
                manager.enter_room(sid, namespace, room)
        elif choice < 0.6:
            for manager in (plain, indexed):
                manager.leave_room(sid, namespace, room)
        elif choice < 0.65:
            for manager in (plain, indexed):
                manager.close_room(room, namespace)
        elif choice < 0.7:
            for manager in (plain, indexed):
                manager.emit("ping", None, namespace, to=sid, callback=lambda *args: None)
        elif choice < 0.8:
            for manager in (plain, indexed):
                manager.pre_disconnect(sid, namespace)
        else:
            for manager in (plain, indexed):
                manager.disconnect(sid, namespace)
            sids.remove((namespace, sid))
        every = [sid for _, sid in sids]
        assert state(indexed, every) == state(plain, every), f"step {step}"


def test_a_sid_list_behaves_like_a_list_of_sids() -> None:
    sids = SidList()
    sids.append("a")
    sids.append("b")
    sids.append("a")
    assert len(sids) == 3
    assert sorted(sids) == ["a", "a", "b"]
    sids.remove("a")
    assert "a" in sids
    sids.remove("a")
    assert "a" not in sids
    with pytest.raises(ValueError, match="not in the list"):
        sids.remove("a")
    assert list(sids) == ["b"]
