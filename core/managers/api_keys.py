"""ApiKeyManager: service-to-service keys ``pbk_<id>.<secret>``.

The part before the dot is the key's *prefix*: public, indexed, shown in lists and logs. The
secret is 32 random bytes and is stored only as its SHA-256 digest (right for high-entropy
secrets; a slow hash would only slow every call) and compared in constant time.

Key records (digest, scopes, expiry; never the secret) are cached in each process for
``API_KEY_CACHE_TTL`` seconds. Revoking sets a marker in Redis that outlives those caches and
that every request checks, so every instance refuses the key at once.
``last_used_at`` is written at most once a minute per key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ASCENDING, IndexModel, ReturnDocument

from config.settings import Settings
from core.errors import NotFound, Unauthorized
from core.managers.base import Manager
from core.managers.database import MongoStore
from core.managers.database.json import to_json_compatible
from core.managers.database.pages import LIMIT_DEFAULT, Page, paginate
from core.managers.redis import RedisManager

COLLECTION = "api_keys"
KEY_PREFIX = "pbk_"
_ALPHABET = string.ascii_letters + string.digits
_TOUCH_EVERY = 60
_CACHE_MAX = 10_000
CREATE_FIELDS = ("id", "name", "prefix", "scopes", "created_at", "expires_at")
#: Oldest first; ``_id`` breaks ties (keys created in the same second).
_OLDEST_FIRST = [("created_at", ASCENDING), ("_id", ASCENDING)]
_ACTIVE = {"revoked_at": None}


@dataclass(frozen=True)
class ApiKey:
    """A validated key as the auth layer sees it."""

    id: str
    name: str
    prefix: str
    scopes: tuple[str, ...]


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _iso(value: datetime | None) -> str | None:
    return to_json_compatible(value) if value else None


class ApiKeyManager(Manager):
    name = "api_keys"

    def __init__(self, settings: Settings, mongo: MongoStore, redis_manager: RedisManager) -> None:
        self.collection = mongo.collection(COLLECTION)
        self.redis = redis_manager
        self.cache_ttl = settings.api_key_cache_ttl
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._touched: dict[str, float] = {}
        mongo.declare_indexes(
            COLLECTION,
            [
                IndexModel([("prefix", ASCENDING)], unique=True, name="prefix_unique"),
                IndexModel([("revoked_at", ASCENDING), *_OLDEST_FIRST], name="active_oldest"),
            ],
        )

    def create(
        self,
        name: str,
        scopes: Sequence[str],
        expires_in_days: int | None = None,
        created_by: str | None = None,
    ) -> dict[str, Any]:
        """Store a new key; the returned dict is the only place the full ``key`` appears.
        The values are the caller's to validate (the api_keys module's ``NewKey``)."""
        scopes = sorted(set(scopes))
        prefix = KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(12))
        secret = secrets.token_urlsafe(32)
        now = datetime.now(UTC).replace(microsecond=0)
        document = {
            "prefix": prefix,
            "secret_hash": _digest(secret),
            "name": name,
            "scopes": scopes,
            "created_at": now,
            "created_by": created_by,
            "expires_at": now + timedelta(days=expires_in_days) if expires_in_days else None,
            "revoked_at": None,
            "last_used_at": None,
        }
        document["_id"] = self.collection.insert_one(document).inserted_id
        public = self.public(document)
        created = {field: public[field] for field in CREATE_FIELDS}
        return {**created, "key": f"{prefix}.{secret}"}

    @staticmethod
    def public(document: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": str(document["_id"]),
            "name": document["name"],
            "prefix": document["prefix"],
            "scopes": list(document["scopes"]),
            "created_at": _iso(document["created_at"]),
            "expires_at": _iso(document.get("expires_at")),
            "last_used_at": _iso(document.get("last_used_at")),
            "created_by": document.get("created_by"),
        }

    def list(self) -> list[dict[str, Any]]:
        """Every active key, oldest first (the CLI's list)."""
        cursor = self.collection.find(_ACTIVE).sort(_OLDEST_FIRST)
        return [self.public(document) for document in cursor]

    def page(self, limit: int = LIMIT_DEFAULT, cursor: str | None = None) -> Page[dict[str, Any]]:
        """A page of the active keys, oldest first (``GET /userauth/api-keys``)."""
        return paginate(
            self.collection,
            _ACTIVE,
            _OLDEST_FIRST,
            limit=limit,
            cursor=cursor,
            project=self.public,
        )

    def revoke(self, key_id: str) -> None:
        try:
            oid = ObjectId(key_id)
        except (InvalidId, TypeError):
            raise NotFound("No such API key.") from None
        document = self.collection.find_one_and_update(
            {"_id": oid, "revoked_at": None},
            {"$set": {"revoked_at": datetime.now(UTC)}},
            return_document=ReturnDocument.AFTER,
        )
        if document is None:
            raise NotFound("No such API key.")
        # Every instance may hold the key in its local cache for up to cache_ttl seconds; the
        # marker outlives those entries and every request checks it (in the rate limiter's
        # round trip), so the key stops working everywhere at once.
        self.redis.client.set(self.revoked_key(document["prefix"]), 1, ex=self.cache_ttl + 5)
        self._cache.pop(document["prefix"], None)

    def revoked_key(self, prefix: str) -> str:
        return self.redis.key("api_keys", "revoked", prefix)

    def verify(self, presented: str, *, check_revoked: bool = True) -> ApiKey:
        """The key's identity, or 401 ``API_KEY_INVALID`` (unknown, wrong, revoked, expired).

        With ``check_revoked=False`` the caller checks :meth:`revoked_key` itself (the request
        pipeline does, in the rate limiter's single Redis round trip).
        """
        prefix, _, secret = presented.partition(".")
        if not prefix.startswith(KEY_PREFIX) or not secret or len(presented) > 200:
            raise Unauthorized("The API key is invalid.", code="API_KEY_INVALID")
        record = self._record(prefix)
        valid = record is not None and hmac.compare_digest(record["secret_hash"], _digest(secret))
        now = datetime.now(UTC).timestamp()
        if not valid or record is None or (record["expires_at"] and record["expires_at"] <= now):
            raise Unauthorized("The API key is invalid.", code="API_KEY_INVALID")
        if check_revoked and self.redis.client.exists(self.revoked_key(prefix)):
            raise Unauthorized("The API key is invalid.", code="API_KEY_INVALID")
        self._touch(record["id"], prefix)
        return ApiKey(record["id"], record["name"], prefix, tuple(record["scopes"]))

    def _record(self, prefix: str) -> dict[str, Any] | None:
        """The key's record from this process's cache, else from MongoDB (then cached)."""
        cached = self._cache.get(prefix)
        if cached is not None and time.monotonic() - cached[0] < self.cache_ttl:
            return cached[1]
        document = self.collection.find_one({"prefix": prefix, "revoked_at": None})
        if document is None:
            self._cache.pop(prefix, None)
            return None
        expires_at = document.get("expires_at")
        record = {
            "id": str(document["_id"]),
            "name": document["name"],
            "scopes": document["scopes"],
            "secret_hash": document["secret_hash"],
            "expires_at": expires_at.timestamp() if expires_at else None,
        }
        if self.cache_ttl:
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[prefix] = (time.monotonic(), record)
        return record

    def _touch(self, key_id: str, prefix: str) -> None:
        """Record use at most once a minute per key: a local check first, so the hot path
        usually costs nothing; then one SET NX shared by all instances; rarely a write."""
        now = time.monotonic()
        if now - self._touched.get(prefix, -_TOUCH_EVERY) < _TOUCH_EVERY:
            return
        self._touched[prefix] = now
        touch_key = self.redis.key("api_keys", "touched", prefix)
        if self.redis.client.set(touch_key, 1, nx=True, ex=_TOUCH_EVERY):
            self.collection.update_one(
                {"_id": ObjectId(key_id)}, {"$set": {"last_used_at": datetime.now(UTC)}}
            )
