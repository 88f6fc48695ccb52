"""What is left in Redis of the sockets' presence (``core.managers.websocket.presence``): the
storm test and ``bench.socket_capacity`` check that sockets which left leave nothing behind."""

from __future__ import annotations

import redis


def presence_left(client: redis.Redis, prefix: str) -> dict[str, int]:
    """Per-socket keys (``ws:sid:*``), the non-empty sets of sockets (a room's, a user's,
    an instance's ``...:sids``) and a room's users and their counts (``ws:room:*:users``,
    ``...:user_sockets``) under ``prefix``, with their sizes."""
    left: dict[str, int] = {}
    for raw in client.scan_iter(match=f"{prefix}ws:*", count=1000):
        key = raw.decode() if isinstance(raw, bytes) else str(raw)
        if key.startswith(f"{prefix}ws:sid:"):
            left[key] = 1
        elif key.endswith(":sids") and client.type(key) in (b"set", "set"):
            size = int(client.scard(key))
            if size:
                left[key] = size
        elif key.endswith((":users", ":user_sockets")) and key.startswith(f"{prefix}ws:room:"):
            size = int(client.hlen(key))
            if size:
                left[key] = size
    return left
