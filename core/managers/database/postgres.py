"""PostgreSQL through psycopg2: a thread-safe pool with a wait timeout, statement timeouts on
every connection and a transaction context manager.

``with postgres.transaction() as cur:`` commits when the block ends and rolls back when it
raises. Connections that broke are discarded, not returned to the pool, so the pool heals on
its own after the server comes back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2
import psycopg2.extensions
import psycopg2.extras
import psycopg2.pool

from config.settings import Settings
from core.errors import DependencyUnavailable
from core.managers.base import HealthResult, timed_check

logger = logging.getLogger(__name__)

from psycopg2.extensions import connection as Connection  # noqa: E402
from psycopg2.extras import RealDictCursor as Cursor  # noqa: E402


class PostgresStore:
    """A lazily created connection pool; ``getconn`` waits for a free slot up to a timeout."""

    #: "The server cannot be reached": connection refused or dropped, admin shutdown.
    unavailable_errors = (psycopg2.OperationalError, psycopg2.InterfaceError)

    def __init__(self, settings: Settings) -> None:
        self._dsn = settings.postgres_dsn
        self._minconn = settings.postgres_pool_min
        self._maxconn = max(settings.postgres_pool_max, settings.postgres_pool_min, 1)
        self._connect_timeout = settings.postgres_connect_timeout
        self._statement_timeout = settings.postgres_statement_timeout_ms
        self._slots = threading.BoundedSemaphore(self._maxconn)
        self._lock = threading.Lock()
        self._pool: psycopg2.pool.ThreadedConnectionPool | None = None
        self._closed = False

    def _get_pool(self) -> psycopg2.pool.ThreadedConnectionPool:
        with self._lock:
            if self._closed:
                raise DependencyUnavailable("postgres")
            if self._pool is None:
                self._pool = psycopg2.pool.ThreadedConnectionPool(
                    0,
                    self._maxconn,
                    self._dsn,
                    connect_timeout=self._connect_timeout,
                    options=f"-c statement_timeout={self._statement_timeout}",
                    application_name="python-base-04",
                )
            return self._pool

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A pooled connection; waits at most the connect timeout for a free one."""
        if not self._slots.acquire(timeout=self._connect_timeout):
            raise DependencyUnavailable("postgres", extra={"reason": "pool exhausted"})
        conn: Connection | None = None
        broken = False
        try:
            conn = self._get_pool().getconn()
            yield conn
        except self.unavailable_errors:
            broken = True
            raise
        finally:
            # The pool rolls back a connection left in a transaction; a broken one is closed.
            if conn is not None and self._pool is not None:
                self._pool.putconn(conn, close=broken or bool(conn.closed))
            self._slots.release()

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        """A cursor (rows as dicts) in a transaction: commit on success, rollback on error."""
        with self.connection() as conn:
            try:
                with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cursor:
                    yield cursor
                conn.commit()
            except BaseException:
                if not conn.closed:
                    conn.rollback()
                raise

    def execute(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        """Run one statement in its own transaction; returns the rows, if any."""
        with self.transaction() as cursor:
            cursor.execute(sql, params)
            return [dict(row) for row in cursor.fetchall()] if cursor.description else []

    def ping(self) -> None:
        self.execute("SELECT 1")

    def health(self) -> HealthResult:
        return timed_check(self.ping)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.closeall()
