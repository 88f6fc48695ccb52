"""A small thread-safe (and gevent-friendly) pool of psycopg2 connections.

Why not ``psycopg2.pool.ThreadedConnectionPool``: it closes every returned connection beyond
``minconn`` (so a lazy pool with ``minconn=0`` never reuses anything), opens ``minconn``
connections eagerly, fails at once instead of waiting for a free connection, and has no hook
to check a connection before handing it out.

Here at most ``max_size`` connections exist; a checkout waits up to ``wait_timeout`` for one.
Idle connections are reused most-recently-used first. Before an idle connection is handed
out it is checked, which is the only retry the pool does (no statement ran yet, so it is safe):

- closed, or its socket already readable (the server closed it or sent a FATAL while it
  sat idle: a restart, ``pg_terminate_backend``, ``idle_session_timeout``): discarded, free;
- idle for longer than ``ping_after_idle`` or idle since a connection of this pool broke:
  ``SELECT 1`` first (one round trip), discarded if that fails.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from collections.abc import Callable

import psycopg2
import psycopg2.extensions

from core.errors import DependencyUnavailable

logger = logging.getLogger(__name__)

_STATUS_IDLE = psycopg2.extensions.TRANSACTION_STATUS_IDLE


class PooledConnection(psycopg2.extensions.connection):  # type: ignore[misc]
    """A psycopg2 connection that remembers when it went back to the pool."""

    idle_since: float = 0.0


Connect = Callable[[], PooledConnection]


def _has_pending_input(conn: PooledConnection) -> bool:
    """True when an idle connection's socket is readable: the server said goodbye."""
    fd = conn.fileno()
    poll = getattr(select, "poll", None)  # gevent's monkey patch removes poll; select stays
    if poll is None:
        readable, _, _ = select.select([fd], [], [], 0)
        return bool(readable)
    poller = poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class ConnectionPool:
    """At most ``max_size`` connections; ``acquire`` waits, ``release`` returns or discards."""

    def __init__(
        self,
        connect: Connect,
        *,
        max_size: int,
        min_idle: int,
        wait_timeout: float,
        ping_after_idle: float = 30.0,
        max_idle_time: float = 300.0,
    ) -> None:
        self._connect = connect
        self._slots = threading.BoundedSemaphore(max_size)
        self._min_idle = min_idle
        self._wait_timeout = wait_timeout
        self._ping_after_idle = ping_after_idle
        self._max_idle_time = max_idle_time
        self._lock = threading.Lock()
        self._idle: list[PooledConnection] = []
        self._broken_at = 0.0
        self._closed = False

    def acquire(self) -> PooledConnection:
        """A healthy connection; raises DependencyUnavailable when none frees up in time."""
        if not self._slots.acquire(timeout=self._wait_timeout):
            logger.warning("postgres pool exhausted", extra={"wait_s": self._wait_timeout})
            raise DependencyUnavailable("postgres", extra={"reason": "pool exhausted"})
        try:
            return self._checkout()
        except BaseException:
            self._slots.release()
            raise

    def _checkout(self) -> PooledConnection:
        # Terminates: each round either hands out a connection, drops one idle connection,
        # or (none idle) connects, which succeeds or raises.
        while True:
            with self._lock:
                if self._closed:
                    raise DependencyUnavailable("postgres", extra={"reason": "pool closed"})
                conn = self._idle.pop() if self._idle else None
                broken_at = self._broken_at
            if conn is None:
                return self._connect()
            if self._usable(conn, broken_at):
                return conn
            self._discard(conn)

    def _usable(self, conn: PooledConnection, broken_at: float) -> bool:
        if conn.closed or _has_pending_input(conn):
            return False
        if conn.idle_since > broken_at and (
            time.monotonic() - conn.idle_since < self._ping_after_idle
        ):
            return True
        try:
            conn.autocommit = True  # a bare SELECT: no BEGIN/ROLLBACK round trips
            with conn.cursor() as cursor:
                cursor.execute("SELECT 1")
            conn.autocommit = False
        except psycopg2.Error as exc:
            logger.info("discarding a dead pooled connection", extra={"error": type(exc).__name__})
            return False
        return True

    def release(self, conn: PooledConnection, *, broken: bool = False) -> None:
        """Give ``conn`` back: reset to a clean idle state, or closed when it cannot be."""
        try:
            keep = not broken and self._reset(conn)
            now = time.monotonic()
            with self._lock:
                if broken:
                    self._broken_at = now
                keep = keep and not self._closed
                if keep:
                    conn.idle_since = now
                    self._idle.append(conn)
                doomed = self._take_stale(now)
            if not keep:
                doomed.append(conn)
            for old in doomed:
                self._discard(old)
        finally:
            self._slots.release()

    def _take_stale(self, now: float) -> list[PooledConnection]:
        """Idle connections above ``min_idle`` unused for ``max_idle_time`` (caller locks)."""
        surplus = len(self._idle) - self._min_idle
        stale: list[PooledConnection] = []
        # Oldest first: the list is used as a stack, so the bottom sits idle the longest.
        while surplus > 0 and now - self._idle[0].idle_since > self._max_idle_time:
            stale.append(self._idle.pop(0))
            surplus -= 1
        return stale

    @staticmethod
    def _reset(conn: PooledConnection) -> bool:
        if conn.closed:
            return False
        try:
            if conn.info.transaction_status != _STATUS_IDLE:
                conn.rollback()
            if conn.autocommit:
                conn.autocommit = False
        except psycopg2.Error as exc:
            logger.info(
                "discarding a connection that cannot be reset",
                extra={"error": type(exc).__name__},
            )
            return False
        return bool(conn.info.transaction_status == _STATUS_IDLE)

    @staticmethod
    def _discard(conn: PooledConnection) -> None:
        if not conn.closed:
            try:
                conn.close()
            except psycopg2.Error as exc:
                logger.debug(
                    "closing a discarded connection failed", extra={"error": type(exc).__name__}
                )

    def close(self) -> None:
        """Close idle connections now; connections in use are closed when released."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            self._discard(conn)
