"""The public names of the DatabaseManager; the code is in :mod:`.manager`."""

from core.managers.database.manager import DatabaseManager
from core.managers.database.migrations import Migrator
from core.managers.database.mongo import MongoStore, mongo_now
from core.managers.database.postgres import PostgresStore, enable_gevent_support
from core.managers.database.quotas import Quota

__all__ = [
    "DatabaseManager",
    "Migrator",
    "MongoStore",
    "PostgresStore",
    "Quota",
    "enable_gevent_support",
    "mongo_now",
]
