"""DatabaseManager: MongoDB (the document store) and PostgreSQL (relational data, audit log).

``app_manager.database.mongo`` is a :class:`MongoStore`; ``app_manager.database.postgres`` a
:class:`PostgresStore`. Readiness reports them as ``mongodb`` and ``postgres``.
"""

from __future__ import annotations

from config.settings import Settings
from core.managers.base import HealthCheck, HealthResult, Manager
from core.managers.database.mongo import MongoStore
from core.managers.database.postgres import PostgresStore

__all__ = ["DatabaseManager", "MongoStore", "PostgresStore"]


class DatabaseManager(Manager):
    name = "database"
    unavailable_errors = MongoStore.unavailable_errors + PostgresStore.unavailable_errors

    def __init__(self, settings: Settings) -> None:
        self.mongo = MongoStore(settings)
        self.postgres = PostgresStore(settings)

    def dependency_of(self, error: BaseException) -> str:
        """Which store an unavailable-error came from: ``mongodb`` or ``postgres``."""
        return "mongodb" if isinstance(error, MongoStore.unavailable_errors) else "postgres"

    def start(self) -> None:
        """Start-up work that needs the stores: declared indexes."""
        self.mongo.ensure_indexes()

    def health(self) -> HealthResult:
        mongodb, postgres = self.mongo.health(), self.postgres.health()
        ok = mongodb["status"] == postgres["status"] == "ok"
        return {"status": "ok" if ok else "error", "mongodb": mongodb, "postgres": postgres}

    def readiness_checks(self) -> dict[str, HealthCheck]:
        return {"mongodb": self.mongo.health, "postgres": self.postgres.health}

    def close(self) -> None:
        self.mongo.close()
        self.postgres.close()
