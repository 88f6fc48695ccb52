"""MongoDB through pymongo: one client per process, timeouts from settings, declared indexes.

Owners use collections directly with the full pymongo API (``mongo.collection("notes")``)
and declare their indexes with :meth:`MongoStore.declare_indexes`; they are created when the
app starts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import pymongo
from pymongo import IndexModel
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import ConnectionFailure, ServerSelectionTimeoutError

from config.settings import Settings
from core.managers.base import HealthResult, timed_check

logger = logging.getLogger(__name__)

Document = dict[str, Any]


class MongoStore:
    """The process's MongoDB client and database; the client is lazy and thread-safe."""

    #: pymongo's "cannot reach the server" family (AutoReconnect, NetworkTimeout, selection).
    unavailable_errors = (ConnectionFailure, ServerSelectionTimeoutError)

    def __init__(self, settings: Settings) -> None:
        self.client: pymongo.MongoClient[Document] = pymongo.MongoClient(
            settings.mongodb_uri,
            maxPoolSize=settings.mongodb_max_pool_size,
            serverSelectionTimeoutMS=settings.mongodb_server_selection_timeout_ms,
            connectTimeoutMS=settings.mongodb_connect_timeout_ms,
            socketTimeoutMS=settings.mongodb_socket_timeout_ms,
            appname="python-base-04",
            tz_aware=True,
            connect=False,
        )
        self.db: Database[Document] = self.client[settings.mongodb_db]
        self._lock = threading.Lock()
        self._indexes: dict[str, list[IndexModel]] = {}

    def collection(self, name: str) -> Collection[Document]:
        return self.db[name]

    def declare_indexes(self, collection: str, indexes: Sequence[IndexModel]) -> None:
        """Record indexes the owner of ``collection`` needs; created by :meth:`ensure_indexes`."""
        with self._lock:
            self._indexes.setdefault(collection, []).extend(indexes)

    def ensure_indexes(self) -> None:
        with self._lock:
            declared = {name: list(models) for name, models in self._indexes.items()}
        for name, models in declared.items():
            self.db[name].create_indexes(models)
            logger.debug("indexes ensured", extra={"collection": name, "count": len(models)})

    def ping(self) -> None:
        self.client.admin.command("ping")

    def health(self) -> HealthResult:
        return timed_check(self.ping)

    def close(self) -> None:
        self.client.close()
