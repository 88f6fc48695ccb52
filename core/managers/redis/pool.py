"""The connection pool of every Redis client the app makes: a busy pool makes callers wait.

redis-py's default ``ConnectionPool`` raises ``ConnectionError("Too many connections")`` the
moment all ``max_connections`` are checked out. Under a gevent worker that moment comes from
the worker's own CPU, not from Redis: a greenlet holds its connection from the command until
the hub resumes it to read the reply, and during a reconnect storm (hundreds of sockets
connecting at once, each with a limiter call and a presence write) hundreds of greenlets are
runnable at once. Those refusals became 503 ``DEPENDENCY_UNAVAILABLE`` and presence left in
Redis.

:func:`blocking_pool` is redis-py's ``BlockingConnectionPool``: a caller that finds every
connection in use waits up to ``REDIS_POOL_TIMEOUT_MS`` for one, and only then fails with
``ConnectionError("No connection available.")`` (still a 503, now for a pool that stayed
full for that long). Its queue is a :class:`HandOffQueue`, so the wait is fair: a connection
given back while callers wait goes to the one waiting longest, never to a newcomer that
happens to run first (with the standard queue a waiter could lose every race for its whole
timeout while the pool stayed busy).
"""

from __future__ import annotations

import threading
from collections import deque
from queue import Empty, Full
from typing import Any, Generic, TypeVar

import redis

Item = TypeVar("Item")


class _Waiter(Generic[Item]):
    __slots__ = ("event", "item")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.item: Item | None = None


class HandOffQueue(Generic[Item]):
    """A bounded LIFO with first-come-first-served waiters: what ``put_nowait`` gives back
    while callers wait in :meth:`get` goes straight to the longest waiting one.

    The interface ``BlockingConnectionPool`` uses of ``queue.LifoQueue``: ``get(block,
    timeout)`` (``queue.Empty`` when nothing came in time), ``put_nowait`` (``queue.Full``
    beyond ``maxsize``) and ``queue`` (the items waiting, most recent last). Thread-safe;
    gevent-friendly once monkey-patched (the lock and the events become gevent's).
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.queue: list[Item] = []
        self._waiters: deque[_Waiter[Item]] = deque()
        self._lock = threading.Lock()

    @property
    def waiting(self) -> int:
        """How many callers wait in :meth:`get` now."""
        with self._lock:
            return len(self._waiters)

    def get(self, block: bool = True, timeout: float | None = None) -> Item:
        with self._lock:
            # Items are only ever queued while nobody waits, so a queued item is free to take.
            if self.queue:
                return self.queue.pop()
            if not block:
                raise Empty
            waiter: _Waiter[Item] = _Waiter()
            self._waiters.append(waiter)
        try:
            handed = waiter.event.wait(timeout)
        except BaseException:  # interrupted (a gevent.Timeout, a kill): take nothing along
            with self._lock:
                if waiter.event.is_set():  # handed over meanwhile: to the next one
                    self._put(waiter.item)  # type: ignore[arg-type]
                else:
                    self._waiters.remove(waiter)
            raise
        with self._lock:
            if handed or waiter.event.is_set():  # given as the time ran out: still ours
                return waiter.item  # type: ignore[return-value]
            self._waiters.remove(waiter)
        raise Empty

    def put_nowait(self, item: Item) -> None:
        with self._lock:
            self._put(item)

    def _put(self, item: Item) -> None:
        """``put_nowait`` under the lock."""
        if self._waiters:
            waiter = self._waiters.popleft()
            waiter.item = item
            waiter.event.set()
            return
        if len(self.queue) >= self.maxsize:
            raise Full
        self.queue.append(item)

    def put(self, item: Item, block: bool = True, timeout: float | None = None) -> None:
        self.put_nowait(item)  # never blocks: the pool puts back only what it took out

    def qsize(self) -> int:
        return len(self.queue)


def blocking_pool(
    url: str, max_connections: int, wait_seconds: float, **connection: Any
) -> redis.BlockingConnectionPool:
    """A pool of at most ``max_connections`` to ``url`` whose callers wait up to
    ``wait_seconds`` for a free connection (``connection``: redis-py's connection options)."""
    return redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=wait_seconds,
        queue_class=HandOffQueue,
        **connection,
    )
