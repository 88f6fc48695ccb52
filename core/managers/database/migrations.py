"""Versioned SQL migrations: ``migrations/NNNN_name.sql`` files applied in version order.

The framework's own migrations (``core``) come first, then each enabled feature module's
``modules/<name>/migrations/`` in module dependency order; versions are per source, so every
module numbers its files from ``0001``. A disabled module's migrations are not applied.

- ``schema_migrations`` records each applied ``(module, version)`` with the file's checksum
  and time; applying is idempotent (a second run applies nothing).
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
#: The source name of the framework's own migrations in ``schema_migrations.module``.
CORE = "core"
_FILE_NAME = re.compile(r"(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql")
# pg_advisory_xact_lock key: arbitrary, fixed, and scoped to the current database.
_LOCK_KEY = 0x5079_4261_7365_4D31

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    module     text NOT NULL DEFAULT 'core',
    version    text NOT NULL,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (module, version)
)
"""
# A table written by version 1 (framework migrations only, keyed by version): add the module
# column (its rows are the framework's) and key by (module, version).
_HAS_MODULE_COLUMN = """
SELECT count(*) AS n FROM information_schema.columns
WHERE table_name = 'schema_migrations' AND column_name = 'module'
  AND table_schema = current_schema()
"""
_SELECT = "SELECT module, version, name, checksum, applied_at FROM schema_migrations"
_SELECT_LEGACY = (
    "SELECT 'core' AS module, version, name, checksum, applied_at FROM schema_migrations"
)
_ADD_MODULE_COLUMN = """
ALTER TABLE schema_migrations ADD COLUMN module text NOT NULL DEFAULT 'core',
    DROP CONSTRAINT schema_migrations_pkey, ADD PRIMARY KEY (module, version)
"""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path
    sql: str
    checksum: str
    #: ``core`` or the feature module whose ``migrations/`` holds the file.
    module: str = CORE

    @property
    def key(self) -> tuple[str, str]:
        return (self.module, self.version)

    @property
    def label(self) -> str:
        prefix = "" if self.module == CORE else f"{self.module}/"
        return f"{prefix}{self.version}_{self.name}"


@dataclass(frozen=True)
class MigrationStatus:
    """One line of ``flask db status``; ``state``: applied, pending, changed or missing."""

    version: str
    name: str
    state: str
    applied_at: datetime | None = None
    module: str = CORE


def checksum(sql: str) -> str:
    # Line endings normalised: a checkout with CRLF is the same migration.
    return hashlib.sha256(sql.replace("\r\n", "\n").encode()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR, module: str = CORE) -> list[Migration]:
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
        found[version] = Migration(version, match["name"], path, sql, checksum(sql), module)
    return [found[v] for v in sorted(found)]


class Migrator:
    """Applies and reports the migrations of ``directory`` (the framework's) and of every
    module directory added with :meth:`add_module`, in that order, on ``store``."""

    def __init__(self, store: PostgresStore, directory: Path = MIGRATIONS_DIR) -> None:
        self.store = store
        self.sources: list[tuple[str, Path]] = [(CORE, directory)]

    def add_module(self, module: str, directory: Path) -> None:
        """Apply ``directory``'s migrations after those added before (dependency order)."""
        if any(name == module for name, _ in self.sources):
            raise StartupError(f"migrations of {module!r} are added twice")
        self.sources.append((module, directory))

    def migrations(self) -> list[Migration]:
        """Every migration of every source, in the order they are applied."""
        found: list[Migration] = []
        for module, directory in self.sources:
            found.extend(discover(directory, module))
        return found

    def upgrade(self) -> list[Migration]:
        """Apply every pending migration; returns those this call applied (maybe none)."""
        migrations = self.migrations()
        with self.store.transaction() as cursor:
            self._lock(cursor)
            self._ensure_table(cursor)
            applied = self._applied(cursor)
        pending = [m for m in migrations if self._is_pending(m, applied)]
        done = [m for m in pending if self._apply(m)]
        for migration in done:
            logger.info("migration applied", extra={"migration": migration.label})
        return done

    def status(self) -> list[MigrationStatus]:
        """Every known migration, applied or not, by source then version (read-only).
        Rows of a module that is no longer enabled are listed as ``missing``."""
        migrations = self.migrations()
        with self.store.transaction() as cursor:
            cursor.execute("SELECT to_regclass('schema_migrations') IS NOT NULL AS present")
            row = cursor.fetchone()
            present = bool(row and row["present"])
            rows = {}
            if present:
                cursor.execute(_HAS_MODULE_COLUMN)
                shape = cursor.fetchone()
                rows = self._rows(cursor, legacy=shape is not None and shape["n"] == 0)
        lines: list[MigrationStatus] = []
        for m in migrations:
            record = rows.pop((m.module, m.version), None)
            if record is None:
                lines.append(MigrationStatus(m.version, m.name, "pending", module=m.module))
            else:
                state = "applied" if record["checksum"] == m.checksum else "changed"
                lines.append(
                    MigrationStatus(m.version, m.name, state, record["applied_at"], m.module)
                )
        for (module, version), record in rows.items():
            lines.append(
                MigrationStatus(version, record["name"], "missing", record["applied_at"], module)
            )
        order = {name: index for index, (name, _) in enumerate(self.sources)}
        return sorted(
            lines, key=lambda line: (order.get(line.module, len(order)), line.module, line.version)
        )

    def _apply(self, migration: Migration) -> bool:
        """Apply one migration under the lock unless another instance just did."""
        with self.store.transaction() as cursor:
            self._lock(cursor)
            cursor.execute(
                "SELECT checksum FROM schema_migrations WHERE module = %s AND version = %s",
                (migration.module, migration.version),
            )
            row = cursor.fetchone()
            if row is not None:
                self._is_pending(migration, {migration.key: row["checksum"]})
                return False
            cursor.execute(migration.sql)
            cursor.execute(
                "INSERT INTO schema_migrations (module, version, name, checksum) "
                "VALUES (%s, %s, %s, %s)",
                (migration.module, migration.version, migration.name, migration.checksum),
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

    @staticmethod
    def _ensure_table(cursor: Cursor) -> None:
        """The bookkeeping table in its current shape (under the lock)."""
        cursor.execute(_CREATE_TABLE)
        cursor.execute(_HAS_MODULE_COLUMN)
        row = cursor.fetchone()
        if row is not None and row["n"] == 0:
            cursor.execute(_ADD_MODULE_COLUMN)

    @classmethod
    def _applied(cls, cursor: Cursor) -> dict[tuple[str, str], str]:
        return {key: row["checksum"] for key, row in cls._rows(cursor).items()}

    @staticmethod
    def _rows(cursor: Cursor, *, legacy: bool = False) -> dict[tuple[str, str], Row]:
        cursor.execute(_SELECT_LEGACY if legacy else _SELECT)
        return {(row["module"], row["version"]): dict(row) for row in cursor.fetchall()}

    @staticmethod
    def _is_pending(migration: Migration, applied: dict[tuple[str, str], str]) -> bool:
        recorded = applied.get(migration.key)
        if recorded is None:
            return True
        if recorded != migration.checksum:
            raise StartupError(
                f"migration {migration.path.name} changed after it was applied "
                "(checksum mismatch); add a new migration instead of editing it"
            )
        return False
