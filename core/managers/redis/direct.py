"""Connections held for one hot command path, next to redis-py's pool.

``Redis.execute_command`` checks a connection out of the pool for every command: a lock, a
socket poll to make sure the connection holds no unread data, observability counters, then
the command inside the retry wrapper, and the pool release. On the request path (the rate
limiter's one round trip per request, on a client without retries) that bookkeeping costs
more CPU than sending the command and reading the reply.

:class:`DirectConnections` keeps the connections it took from the client's pool and hands
them out itself: a greenlet (or thread) pops an idle one, sends, reads the whole reply and
puts it back. It never returns one with unread data: redis-py's ``send_command`` and
``read_response`` disconnect on every error except an error *reply* (which is fully read),
and a disconnected connection reconnects on its next command. The pool's ``max_connections``
still bounds how many exist; closing the client disconnects them.
"""

from __future__ import annotations

import os
from typing import Any

import redis
from redis.connection import AbstractConnection


class DirectConnections:
    """``execute(*args)`` sends one command on a held connection of ``client``'s pool."""

    def __init__(self, client: redis.Redis) -> None:
        self._pool = client.connection_pool
        self._idle: list[AbstractConnection] = []
        self._pid = os.getpid()

    def execute(self, *args: Any) -> Any:
        """The raw reply (no response callback: meant for commands like ``EVALSHA``)."""
        if self._pid != os.getpid():  # forked: the parent's sockets are not ours
            self._idle, self._pid = [], os.getpid()
        try:
            connection = self._idle.pop()
        except IndexError:
            connection = self._pool.get_connection()
        try:
            connection.send_command(*args)  # type: ignore[no-untyped-call]
            return connection.read_response()
        finally:
            self._idle.append(connection)
