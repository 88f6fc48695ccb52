"""One hot command path straight on the pool's queue, without redis-py's per-command checkout.

``Redis.execute_command`` checks a connection out of the pool for every command: a lock, a
socket poll to make sure the connection holds no unread data, observability counters, then
the command inside the retry wrapper, and the release. On the request path (the rate
limiter's one round trip per request, on a client without retries) that bookkeeping costs
more CPU than sending the command and reading the reply.

:class:`DirectConnections` takes a connection from the same queue the pool hands out (a
:class:`~core.managers.redis.pool.HandOffQueue`), sends, reads the whole reply and puts it
back: the pool's ``max_connections`` bounds these connections and the pool's other callers
together, and when all are in use a caller waits for one like any other (up to the pool's
``timeout``, ``REDIS_POOL_TIMEOUT_MS``, then ``ConnectionError``). A connection never goes
back with unread data: redis-py's ``send_command`` and ``read_response`` disconnect on every
error except an error *reply* (which is fully read), and a disconnected connection
reconnects on its next command. Closing the client disconnects them all.
"""

from __future__ import annotations

import os
from queue import Empty
from typing import Any

import redis


class DirectConnections:
    """``execute(*args)`` sends one command on a connection of ``client``'s blocking pool."""

    def __init__(self, client: redis.Redis) -> None:
        pool = client.connection_pool
        if not isinstance(pool, redis.BlockingConnectionPool):
            raise TypeError("DirectConnections needs a client on a BlockingConnectionPool")
        self._pool = pool
        self._pid = os.getpid()

    def execute(self, *args: Any) -> Any:
        """The raw reply (no response callback: meant for commands like ``EVALSHA``)."""
        pool = self._pool
        if self._pid != os.getpid():  # forked: the parent's sockets are not ours
            pool.reset()  # type: ignore[no-untyped-call]
            self._pid = os.getpid()
        queue = pool.pool
        try:
            connection = queue.get(True, pool.timeout)
        except Empty:  # every connection stayed in use for the whole wait
            raise redis.ConnectionError("No connection available.") from None
        try:
            if connection is None:  # a free slot: the pool makes (and tracks) a connection
                connection = pool.make_connection()  # type: ignore[no-untyped-call]
            connection.send_command(*args)
            return connection.read_response()
        finally:
            queue.put_nowait(connection)
