"""The module's collection: ``{_id, owner, title, body, created_at}``, indexed for its one list
query (a user's notes, newest first)."""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel

from core.errors import NotFound
from core.managers.database import MongoStore, mongo_now
from core.managers.database.pages import Page, paginate

#: This module's name (its package's). The collection and the service are named after it, so a
#: copy of the module under another name never shares them.
NAME = __name__.rsplit(".", 2)[-2]
COLLECTION = NAME
_NEWEST_FIRST = [("created_at", DESCENDING), ("_id", DESCENDING)]


class NoteStore:
    def __init__(self, mongo: MongoStore) -> None:
        self.notes = mongo.collection(COLLECTION)
        mongo.declare_indexes(
            COLLECTION, [IndexModel([("owner", ASCENDING), *_NEWEST_FIRST], name="owner_newest")]
        )

    def create(self, owner: str, title: str, body: str) -> dict[str, Any]:
        note = {"owner": owner, "title": title, "body": body, "created_at": mongo_now()}
        note["_id"] = self.notes.insert_one(note).inserted_id
        return public(note)

    def page_for(self, owner: str, limit: int, cursor: str | None) -> Page[dict[str, Any]]:
        """A page of ``owner``'s notes, newest first, after ``cursor``."""
        return paginate(
            self.notes, {"owner": owner}, _NEWEST_FIRST, limit=limit, cursor=cursor, project=public
        )

    def delete(self, owner: str, note_id: str) -> None:
        """Delete one of ``owner``'s notes; someone else's note is as missing as no note."""
        if self.notes.delete_one({"_id": ObjectId(note_id), "owner": owner}).deleted_count == 0:
            raise NotFound("There is no such note.")


def public(note: dict[str, Any]) -> dict[str, Any]:
    """What clients see of a note (the owner is the caller: not repeated)."""
    return {
        "id": note["_id"],
        "title": note["title"],
        "body": note["body"],
        "created_at": note["created_at"],
    }
