"""MongoDB through pymongo: one client per process, timeouts from settings, declared indexes.

Owners use collections directly with the full pymongo API and pick a role:

- ``mongo.collection("notes")`` (``read_write``): primary reads, the main client;
- ``mongo.collection("notes", role="read_only")``: reads with ``MONGODB_READ_ONLY_PREFERENCE``
  (``secondaryPreferred`` by default) for queries that tolerate slightly stale data;
- ``mongo.collection("notes", role="admin")``: a separate client on ``MONGODB_ADMIN_URI`` when
  it is set (a user allowed to create indexes, drop collections), else the main client.

Owners declare their indexes with :meth:`MongoStore.declare_indexes`; they are created through
the admin role when the app starts. Unreachable-server errors (``ConnectionFailure`` and its
subclasses) propagate as they are and the HTTP layer answers 503 ``DEPENDENCY_UNAVAILABLE``;
pymongo reconnects on its own when the server is back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

import pymongo
from pymongo import IndexModel
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import ConnectionFailure
from pymongo.read_preferences import (
    Nearest,
    Primary,
    PrimaryPreferred,
    Secondary,
    SecondaryPreferred,
)

from config.settings import Settings
from core.managers.base import HealthResult, timed_check

logger = logging.getLogger(__name__)

Document = dict[str, Any]
Role = Literal["read_write", "read_only", "admin"]

_READ_PREFERENCES = {
    "primary": Primary(),
    "primaryPreferred": PrimaryPreferred(),
    "secondary": Secondary(),
    "secondaryPreferred": SecondaryPreferred(),
    "nearest": Nearest(),
}


def mongo_now() -> datetime:
    """The current UTC time as MongoDB keeps it: BSON dates hold milliseconds, so a document
    stamped with this answers the same time on create as on every later read."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond - now.microsecond % 1000)


class MongoStore:
    """The process's MongoDB clients and database; clients connect lazily and are thread-safe."""

    #: pymongo's "cannot reach the server" family (AutoReconnect, NetworkTimeout, selection).
    unavailable_errors: ClassVar[tuple[type[BaseException], ...]] = (ConnectionFailure,)

    def __init__(self, settings: Settings) -> None:
        self.client = self._client(settings, settings.mongodb_uri)
        self.admin_client = (
            self._client(settings, settings.mongodb_admin_uri)
            if settings.mongodb_admin_uri
            else self.client
        )
        self.db: Database[Document] = self.client.get_database(
            settings.mongodb_db, read_preference=Primary()
        )
        self._read_only_db = self.client.get_database(
            settings.mongodb_db,
            read_preference=_READ_PREFERENCES[settings.mongodb_read_only_preference],
        )
        self._admin_db: Database[Document] = self.admin_client.get_database(
            settings.mongodb_db, read_preference=Primary()
        )
        self._lock = threading.Lock()
        self._indexes: dict[str, list[IndexModel]] = {}

    @staticmethod
    def _client(settings: Settings, uri: str) -> pymongo.MongoClient[Document]:
        # URI options (TLS, replicaSet, authSource...) pass through; these keyword arguments
        # are the settings the framework owns and win over the same options in the URI.
        return pymongo.MongoClient(
            uri,
            maxPoolSize=settings.mongodb_max_pool_size,
            serverSelectionTimeoutMS=settings.mongodb_server_selection_timeout_ms,
            connectTimeoutMS=settings.mongodb_connect_timeout_ms,
            socketTimeoutMS=settings.mongodb_socket_timeout_ms,
            retryWrites=settings.mongodb_retry_writes,
            retryReads=settings.mongodb_retry_reads,
            appname="python-base-04",
            tz_aware=True,
            connect=False,
        )

    def database(self, role: Role = "read_write") -> Database[Document]:
        """The application database as seen by ``role``."""
        if role == "read_write":
            return self.db
        if role == "read_only":
            return self._read_only_db
        if role == "admin":
            return self._admin_db
        raise ValueError(f"unknown role {role!r}; use read_write, read_only or admin")

    def collection(self, name: str, role: Role = "read_write") -> Collection[Document]:
        """A collection with the full pymongo API, through ``role``'s client and preference."""
        return self.database(role)[name]

    def declare_indexes(self, collection: str, indexes: Sequence[IndexModel]) -> None:
        """Record indexes the owner of ``collection`` needs; created by :meth:`ensure_indexes`."""
        with self._lock:
            self._indexes.setdefault(collection, []).extend(indexes)

    def declared_collections(self) -> list[str]:
        """The collections whose owners declared indexes (the framework's and modules')."""
        with self._lock:
            return sorted(self._indexes)

    def ensure_indexes(self) -> None:
        """Create every declared index (a no-op for those that exist)."""
        with self._lock:
            declared = {name: list(models) for name, models in self._indexes.items()}
        for name, models in declared.items():
            self._admin_db[name].create_indexes(models)
            logger.debug("indexes ensured", extra={"collection": name, "count": len(models)})

    def ping(self) -> None:
        self.client.admin.command("ping")

    def health(self) -> HealthResult:
        return timed_check(self.ping)

    def close(self) -> None:
        self.client.close()
        if self.admin_client is not self.client:
            self.admin_client.close()
