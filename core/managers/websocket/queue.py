"""The Socket.IO message queue: python-socketio's Redis manager, stoppable.

The library's listener thread loops forever, so every closed app would leave a thread
reconnecting to Redis. ``close()`` marks the queue closed and publishes a no-op message on
its channel; the listener wakes, sees the mark and ends its thread.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import socketio


class _Stopped(BaseException):
    """Ends the listener thread; the library's loop catches ``Exception`` only."""


class RedisQueue(socketio.RedisManager):  # type: ignore[misc]
    def __init__(self, url: str, channel: str) -> None:
        super().__init__(url, channel=channel)
        self._closing = threading.Event()

    def _redis_listen_with_retries(self) -> Iterator[Any]:
        for message in super()._redis_listen_with_retries():
            if self._closing.is_set():
                raise _Stopped
            yield message

    def _thread(self) -> None:
        with contextlib.suppress(_Stopped):
            super()._thread()

    def close(self) -> None:
        if self._closing.is_set():
            return
        self._closing.set()
        self._publish({"method": "noop", "host_id": self.host_id})
