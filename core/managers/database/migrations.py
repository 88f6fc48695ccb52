"""Versioned SQL migrations: ``migrations/NNNN_name.sql`` files applied in version order.

- ``schema_migrations`` records each applied version with the file's checksum and time;
  applying is idempotent (a second run applies nothing).
- Each migration runs in its own transaction together with its bookkeeping row, so a failing
  migration leaves neither its changes nor a row behind.
- Every transaction first takes a transaction-level advisory lock, and a migration is
  re-checked under the lock before it runs: two instances starting at once never both apply
  it (the second waits, then finds it applied).
- A file changed after it was applied (checksum mismatch) stops the run with an error naming
  the file: write a new migration instead of editing an applied one.
- An applied version whose file is gone (an older release rolled out after a newer one ran)
  is reported by ``status`` and otherwise ignored, so rollbacks can still start.

Problems with the files (a bad name, a duplicate version, a changed file) raise
:class:`core.errors.StartupError`: the app cannot start on them. Migrations run under the
normal ``statement_timeout``; one that needs longer says so in its own file
(``SET LOCAL statement_timeout = '10min';``).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from core.errors import StartupError
from core.managers.database.postgres import Cursor, PostgresStore, Row

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_FILE_NAME = re.compile(r"(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql")
# pg_advisory_xact_lock key: arbitrary, fixed, and scoped to the current database.
_LOCK_KEY = 0x5079_4261_7365_4D31

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path
    sql: str
    checksum: str

    @property
    def label(self) -> str:
        return f"{self.version}_{self.name}"


@dataclass(frozen=True)
class MigrationStatus:
    """One line of ``flask db status``; ``state``: applied, pending, changed or missing."""

    version: str
    name: str
    state: str
    applied_at: datetime | None = None


def checksum(sql: str) -> str:
    # Line endings normalised: a checkout with CRLF is the same migration.
    return hashlib.sha256(sql.replace("\r\n", "\n").encode()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The ``.sql`` files of ``directory`` in version order; a bad name is an error."""
    found: dict[str, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.fullmatch(path.name)
        if match is None:
            raise StartupError(f"migration {path.name}: name it NNNN_lower_snake.sql")
        version = match["version"]
        if version in found:
            raise StartupError(
                f"migration {path.name}: version {version} is also {found[version].path.name}"
            )
        sql = path.read_text(encoding="utf-8")
        found[version] = Migration(version, match["name"], path, sql, checksum(sql))
    return [found[v] for v in sorted(found)]


class Migrator:
    """Applies and reports the migrations of ``directory`` on ``store``."""

    def __init__(self, store: PostgresStore, directory: Path = MIGRATIONS_DIR) -> None:
        self.store = store
        self.directory = directory

    def upgrade(self) -> list[Migration]:
        """Apply every pending migration; returns those this call applied (maybe none)."""
        migrations = discover(self.directory)
        with self.store.transaction() as cursor:
            self._lock(cursor)
            applied = self._applied(cursor)
        pending = [m for m in migrations if self._is_pending(m, applied)]
        done = [m for m in pending if self._apply(m)]
        for migration in done:
            logger.info("migration applied", extra={"migration": migration.label})
        return done

    def status(self) -> list[MigrationStatus]:
        """Every known version, applied or not, in version order (read-only)."""
        migrations = discover(self.directory)
        with self.store.transaction() as cursor:
            cursor.execute("SELECT to_regclass('schema_migrations') IS NOT NULL AS present")
            row = cursor.fetchone()
            present = bool(row and row["present"])
            rows = self._rows(cursor) if present else {}
        lines: list[MigrationStatus] = []
        for m in migrations:
            record = rows.pop(m.version, None)
            if record is None:
                lines.append(MigrationStatus(m.version, m.name, "pending"))
            else:
                state = "applied" if record["checksum"] == m.checksum else "changed"
                lines.append(MigrationStatus(m.version, m.name, state, record["applied_at"]))
        for version, record in rows.items():
            lines.append(MigrationStatus(version, record["name"], "missing", record["applied_at"]))
        return sorted(lines, key=lambda line: line.version)

    def _apply(self, migration: Migration) -> bool:
        """Apply one migration under the lock unless another instance just did."""
        with self.store.transaction() as cursor:
            self._lock(cursor)
            cursor.execute(
                "SELECT checksum FROM schema_migrations WHERE version = %s", (migration.version,)
            )
            row = cursor.fetchone()
            if row is not None:
                self._is_pending(migration, {migration.version: row["checksum"]})
                return False
            cursor.execute(migration.sql)
            cursor.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
        return True

    @staticmethod
    def _lock(cursor: Cursor) -> None:
        # Serialises migrators across processes; released when the transaction ends. Waiting
        # for another instance's migration is not a slow statement: lift statement_timeout
        # for the wait (bounded by lock_timeout instead), then restore the session default.
        cursor.execute("SET LOCAL statement_timeout = 0")
        cursor.execute("SET LOCAL lock_timeout = '10min'")
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        cursor.execute("SET LOCAL statement_timeout TO DEFAULT")
        cursor.execute("SET LOCAL lock_timeout TO DEFAULT")
        cursor.execute(_CREATE_TABLE)

    @classmethod
    def _applied(cls, cursor: Cursor) -> dict[str, str]:
        return {version: row["checksum"] for version, row in cls._rows(cursor).items()}

    @staticmethod
    def _rows(cursor: Cursor) -> dict[str, Row]:
        cursor.execute("SELECT version, name, checksum, applied_at FROM schema_migrations")
        return {row["version"]: dict(row) for row in cursor.fetchall()}

    @staticmethod
    def _is_pending(migration: Migration, applied: dict[str, str]) -> bool:
        recorded = applied.get(migration.version)
        if recorded is None:
            return True
        if recorded != migration.checksum:
            raise StartupError(
                f"migration {migration.path.name} changed after it was applied "
                "(checksum mismatch); add a new migration instead of editing it"
            )
        return False
