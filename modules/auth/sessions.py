"""The ``auth_sessions`` collection: a user's logins (token families) as they can see them.

Every login starts a token family (``fam`` claim, core/managers/jwt.py); this store keeps one
document per family so that its user can list their sessions and end them
(``GET /userauth/sessions``, docs/auth.md "Sessions"). A document holds no token: the session
id (an ObjectId, not the family), its user, when it started and was last refreshed, the
client address and user agent of the last login or refresh, and when its refresh token
expires (a TTL index deletes it then; lists skip it already).

Ending a session is the JWTManager's family revocation (every access and refresh token of the
login answers ``TOKEN_REVOKED`` on every instance, and the socket sweep drops its sockets),
then the document is deleted. Documents are written at login and refresh, deleted at logout,
on refresh-token reuse and when the user ends the session.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ASCENDING, DESCENDING, IndexModel

from core.errors import NotFound
from core.managers.database import MongoStore
from core.managers.database.pages import Page, paginate

COLLECTION = "auth_sessions"
USER_AGENT_MAX = 256
_NEWEST_FIRST = [("created_at", DESCENDING), ("_id", DESCENDING)]
_BATCH = 500


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class SessionStore:
    def __init__(self, mongo: MongoStore, refresh_ttl: int) -> None:
        self.collection = mongo.collection(COLLECTION)
        self.refresh_ttl = refresh_ttl
        mongo.declare_indexes(
            COLLECTION,
            [
                IndexModel([("family", ASCENDING)], unique=True, name="family_unique"),
                IndexModel([("user_id", ASCENDING), *_NEWEST_FIRST], name="user_newest_first"),
                IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expiry"),
            ],
        )

    def _seen(self, ip: str | None, user_agent: str | None) -> dict[str, Any]:
        now = _now()
        return {
            "last_used_at": now,
            "ip": ip,
            "user_agent": (user_agent or "")[:USER_AGENT_MAX] or None,
            "expires_at": now + timedelta(seconds=self.refresh_ttl),
        }

    def started(self, family: str, user_id: str, ip: str | None, user_agent: str | None) -> None:
        """A login started ``family``."""
        seen = self._seen(ip, user_agent)
        self.collection.insert_one(
            {"family": family, "user_id": user_id, "created_at": seen["last_used_at"], **seen}
        )

    def refreshed(self, family: str, user_id: str, ip: str | None, user_agent: str | None) -> None:
        """``family`` was refreshed (a login made before sessions were recorded appears now)."""
        seen = self._seen(ip, user_agent)
        self.collection.update_one(
            {"family": family},
            {
                "$set": seen,
                "$setOnInsert": {"user_id": user_id, "created_at": seen["last_used_at"]},
            },
            upsert=True,
        )

    def page(
        self, user_id: str, current_family: str, limit: int, cursor: str | None
    ) -> Page[dict[str, Any]]:
        """The user's live sessions, newest first."""
        return paginate(
            self.collection,
            {"user_id": user_id, "expires_at": {"$gt": _now()}},
            _NEWEST_FIRST,
            limit=limit,
            cursor=cursor,
            project=lambda document: {
                "id": str(document["_id"]),
                "created_at": document["created_at"],
                "last_used_at": document["last_used_at"],
                "ip": document.get("ip"),
                "user_agent": document.get("user_agent"),
                "current": document["family"] == current_family,
            },
        )

    def family_of(self, user_id: str, session_id: str) -> str:
        """The family of the user's session ``session_id``; 404 for any other id (another
        user's included: ids are not confirmed to those who do not own them)."""
        try:
            oid = ObjectId(session_id)
        except (InvalidId, TypeError):
            raise NotFound("No such session.") from None
        document = self.collection.find_one({"_id": oid, "user_id": user_id}, {"family": 1})
        if document is None:
            raise NotFound("No such session.")
        return str(document["family"])

    def others(self, user_id: str, current_family: str) -> Iterator[dict[str, str]]:
        """``{session_id: family}`` of every session of the user but ``current_family``'s, in
        batches (a user may have many)."""
        batch: dict[str, str] = {}
        query = {"user_id": user_id, "family": {"$ne": current_family}}
        for document in self.collection.find(query, {"family": 1}).batch_size(_BATCH):
            batch[str(document["_id"])] = str(document["family"])
            if len(batch) == _BATCH:
                yield batch
                batch = {}
        if batch:
            yield batch

    def all_of(self, user_id: str | None) -> Iterator[tuple[str, dict[str, str]]]:
        """``(user id, {session_id: family})`` batches of every session of ``user_id``, or of
        every user (None)."""
        query = {} if user_id is None else {"user_id": user_id}
        owner, batch = "", dict[str, str]()
        found = self.collection.find(query, {"family": 1, "user_id": 1}).sort("user_id", 1)
        for document in found.batch_size(_BATCH):
            if batch and (document["user_id"] != owner or len(batch) == _BATCH):
                yield owner, batch
                batch = {}
            owner = str(document["user_id"])
            batch[str(document["_id"])] = str(document["family"])
        if batch:
            yield owner, batch

    def ended(self, families: list[str]) -> None:
        """Forget the sessions of ``families`` (their tokens are revoked already)."""
        if families:
            self.collection.delete_many({"family": {"$in": families}})
