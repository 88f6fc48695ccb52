"""PostgreSQL through psycopg2: a pooled store with timeouts and a transaction context manager.

``with postgres.transaction() as cur:`` commits when the block ends and rolls back when it
raises. Every connection carries ``statement_timeout`` (``POSTGRES_STATEMENT_TIMEOUT_MS``),
``connect_timeout`` and TCP keepalives / ``tcp_user_timeout``, so no call waits forever on a
network that went silent.

Errors, decided once here:

- the server cannot be reached (refused, connection lost, shutting down, too many
  connections, no pool slot free in time): :class:`core.errors.DependencyUnavailable`
  (``dependency="postgres"``, the driver error chained as ``__cause__``) -> HTTP 503
  ``DEPENDENCY_UNAVAILABLE``. The broken connection is discarded, never pooled again, so the
  app heals by itself once the server is back.
- ``statement_timeout`` fired (``psycopg2.errors.QueryCanceled``) and every other driver error
  propagate unchanged: the server is up, the statement is at fault (a missing index, a lock
  held too long), so it is a 500 ``INTERNAL_ERROR`` with a logged traceback, not a 503.
  Owners that expect it may catch ``QueryCanceled`` themselves.

Statements are never retried; the only retry is the pool's check of an idle connection
before it is handed out (see :mod:`core.managers.database.pool`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import psycopg2.extras

from config.settings import Settings
from core.errors import DependencyUnavailable
from core.managers.base import HealthResult, timed_check
from core.managers.database.pool import ConnectionPool, PooledConnection

logger = logging.getLogger(__name__)

# psycopg2 has no type hints: a cursor is typed as Any, rows as dicts (RealDictCursor).
Cursor = Any
Row = dict[str, Any]

# SQLSTATEs that mean "this server cannot serve us now" rather than "this statement failed":
# admin/crash shutdown, cannot connect now (starting up), too many connections. Class 08 is
# "connection exception".
_UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})
# Bound on data sent but not acknowledged (a peer that vanished without a RST); keepalives
# notice an idle connection whose peer is gone.
_TCP_USER_TIMEOUT_MS = 10_000
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10}


def enable_gevent_support() -> bool:
    """Make psycopg2 yield to other greenlets while it waits on the server.

    Only when gevent has monkey-patched ``socket`` (gunicorn's gevent worker); elsewhere it does
    nothing. Returns whether psycogreen's wait callback is installed. Idempotent; call it after
    monkey-patching (gunicorn: ``post_worker_init``); :class:`PostgresStore` calls it too.
    """
    try:
        from gevent import monkey
    except ImportError:
        return False
    if not monkey.is_module_patched("socket"):
        return False
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()
    return True


def is_unavailable(error: BaseException, conn: PooledConnection | None = None) -> bool:
    """Whether a driver error means the server is unreachable (not that a statement failed)."""
    if not isinstance(error, psycopg2.Error):
        return False
    if conn is not None and conn.closed:
        return True
    if not isinstance(error, psycopg2.OperationalError):
        return False
    code = error.pgcode
    # No SQLSTATE: libpq itself failed (refused, reset, EOF, timeout) - no server answered.
    return code is None or code.startswith("08") or code in _UNAVAILABLE_SQLSTATES


def _connect_options(dsn: str, statement_timeout_ms: int) -> str:
    """The DSN's own ``options`` plus the statement timeout (keyword args would replace them)."""
    own = psycopg2.extensions.parse_dsn(dsn).get("options", "")
    return f"{own} -c statement_timeout={statement_timeout_ms}".strip()


class PostgresStore:
    """A pooled PostgreSQL store; connections are opened lazily, on first use."""

    #: Unreachable-server errors leave this store as DependencyUnavailable (an ApiError, 503),
    #: so no raw driver exception needs listing here; see the module docstring.
    unavailable_errors: ClassVar[tuple[type[BaseException], ...]] = ()

    def __init__(self, settings: Settings) -> None:
        enable_gevent_support()
        self._dsn = settings.postgres_dsn
        self._connect_timeout = settings.postgres_connect_timeout
        self._options = _connect_options(self._dsn, settings.postgres_statement_timeout_ms)
        self._pool = ConnectionPool(
            self._open,
            max_size=max(settings.postgres_pool_max, settings.postgres_pool_min, 1),
            min_idle=settings.postgres_pool_min,
            wait_timeout=settings.postgres_connect_timeout,
        )

    def _open(self) -> PooledConnection:
        if psycopg2.extensions.get_wait_callback() is None:
            return self._connect()
        # Green (gevent) connections connect asynchronously, and libpq ignores connect_timeout
        # then: bound the connect with a gevent timeout instead.
        import gevent

        timeout = psycopg2.OperationalError("timeout expired while connecting")
        with gevent.Timeout(self._connect_timeout, timeout):
            return self._connect()

    def _connect(self) -> PooledConnection:
        conn: PooledConnection = psycopg2.connect(
            self._dsn,
            connection_factory=PooledConnection,
            # Rows as dicts on every cursor: set here, not per cursor, so that a tracing
            # instrumentation wrapping the connection's cursor factory sees every statement.
            cursor_factory=psycopg2.extras.RealDictCursor,
            connect_timeout=self._connect_timeout,
            options=self._options,
            application_name="python-base-04",
            tcp_user_timeout=_TCP_USER_TIMEOUT_MS,
            **_KEEPALIVES,
        )
        return conn

    @contextmanager
    def connection(self) -> Iterator[PooledConnection]:
        """A pooled connection, returned clean (rolled back if left in a transaction).

        Leave session state (``SET``, temp tables, session advisory locks) as you found it.
        """
        try:
            conn = self._pool.acquire()
        except psycopg2.Error as exc:
            raise self._unavailable(exc) from exc
        broken = False
        try:
            yield conn
        except psycopg2.Error as exc:
            if is_unavailable(exc, conn):
                broken = True
                raise self._unavailable(exc) from exc
            raise
        finally:
            self._pool.release(conn, broken=broken or bool(conn.closed))

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        """A cursor (rows as dicts) in a transaction: commit on success, rollback on error."""
        with self.connection() as conn:
            try:
                with conn.cursor() as cursor:
                    yield cursor
                conn.commit()
            except BaseException:
                self._rollback(conn)
                raise

    def execute(self, sql: str, params: Any = None) -> list[Row]:
        """Run one statement in its own transaction; returns the rows, if any."""
        with self.transaction() as cursor:
            cursor.execute(sql, params)
            return [dict(row) for row in cursor.fetchall()] if cursor.description else []

    def ping(self) -> None:
        with self.connection() as conn:
            conn.autocommit = True  # one round trip, no BEGIN/COMMIT; the pool resets it
            with conn.cursor() as cursor:
                cursor.execute("SELECT 1")

    def health(self) -> HealthResult:
        return timed_check(self.ping)

    def close(self) -> None:
        self._pool.close()

    @staticmethod
    def _rollback(conn: PooledConnection) -> None:
        if conn.closed:
            return
        try:
            conn.rollback()
        except psycopg2.Error as exc:
            # The original error is the one to report; the pool discards this connection.
            logger.info("rollback failed", extra={"error": type(exc).__name__})

    @staticmethod
    def _unavailable(exc: psycopg2.Error) -> DependencyUnavailable:
        # Type only: libpq messages name hosts and users.
        logger.warning("postgres unavailable", extra={"error": type(exc).__name__})
        return DependencyUnavailable("postgres")
