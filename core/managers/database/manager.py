"""DatabaseManager: MongoDB (the document store) and PostgreSQL (relational data, audit log).

``app_manager.database.mongo`` is a :class:`MongoStore`; ``app_manager.database.postgres`` a
:class:`PostgresStore`; ``app_manager.database.migrator`` applies the versioned SQL files of
``core/managers/database/migrations/``. Readiness reports the stores as ``mongodb`` and
``postgres``. JSON for stored values: :func:`core.managers.database.json.to_json_compatible`.
"""

from __future__ import annotations

from pathlib import Path

from config.settings import Settings
from core.managers.base import HealthCheck, HealthResult, Manager
from core.managers.database.migrations import MIGRATIONS_DIR, Migrator
from core.managers.database.mongo import MongoStore
from core.managers.database.postgres import PostgresStore


class DatabaseManager(Manager):
    name = "database"
    unavailable_errors = MongoStore.unavailable_errors + PostgresStore.unavailable_errors

    def __init__(self, settings: Settings, *, migrations_dir: Path = MIGRATIONS_DIR) -> None:
        self.mongo = MongoStore(settings)
        self.postgres = PostgresStore(settings)
        self.migrator = Migrator(self.postgres, migrations_dir)
        self._migrate_on_start = settings.postgres_migrate_on_start

    def dependency_of(self, error: BaseException) -> str:
        """Which store an unavailable-error came from: ``mongodb`` or ``postgres``."""
        return "mongodb" if isinstance(error, MongoStore.unavailable_errors) else "postgres"

    def start(self) -> None:
        """Start-up work that needs the stores: both pinged, declared indexes, then pending
        migrations when ``POSTGRES_MIGRATE_ON_START`` is set."""
        self.mongo.ping()
        self.postgres.ping()
        self.mongo.ensure_indexes()
        if self._migrate_on_start:
            self.migrator.upgrade()

    def health(self) -> HealthResult:
        mongodb, postgres = self.mongo.health(), self.postgres.health()
        ok = mongodb["status"] == postgres["status"] == "ok"
        return {"status": "ok" if ok else "error", "mongodb": mongodb, "postgres": postgres}

    def readiness_checks(self) -> dict[str, HealthCheck]:
        return {"mongodb": self.mongo.health, "postgres": self.postgres.health}

    def close(self) -> None:
        self.mongo.close()
        self.postgres.close()
