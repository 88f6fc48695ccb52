"""Cursor pagination over a MongoDB query: the one helper behind every list of the API.

A list answers ``{"items": [...], "next_cursor": "..." | null}`` and takes ``limit`` (1 to
``LIMIT_MAX``) and ``cursor`` (the previous page's ``next_cursor``). The cursor is opaque to
clients: the sort-key values of the page's last item, base64url-encoded. Keyset pagination,
not skip/offset: a page costs one indexed range query however deep it is, and items inserted
or deleted meanwhile neither repeat nor vanish from the pages still to come.

The sort must end with ``_id``, so that no two items tie: the order is total and stable. The
query and sort should be covered by an index of the collection's owner.

A cursor that is not one of ours, or one made for another sort, is 400 ``VALIDATION_ERROR``
on ``/cursor``; it is data, never an operator (decoded values are plain BSON scalars).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from bson import ObjectId, json_util
from bson.errors import BSONError
from pymongo import ASCENDING
from pymongo.collection import Collection

from core.errors import ValidationFailed

__all__ = ["CURSOR_MAX", "LIMIT_DEFAULT", "LIMIT_MAX", "Page", "paginate"]

LIMIT_DEFAULT = 20
LIMIT_MAX = 100
#: Longest cursor accepted (a cursor of this helper is far shorter).
CURSOR_MAX = 512
_SCALARS = (str, int, float, datetime, ObjectId)

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    #: Pass it back as ``cursor`` for the next page; None on the last page.
    next_cursor: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"items": self.items, "next_cursor": self.next_cursor}


def paginate(
    collection: Collection[Any],
    query: Mapping[str, Any],
    sort: Sequence[tuple[str, int]],
    *,
    limit: int = LIMIT_DEFAULT,
    cursor: str | None = None,
    project: Callable[[dict[str, Any]], T],
) -> Page[T]:
    """One page of ``query`` in ``sort`` order, after ``cursor``; items through ``project``."""
    if not sort or sort[-1][0] != "_id":
        raise ValueError("paginate(): the sort must end with _id (a total, stable order)")
    if not 1 <= limit <= LIMIT_MAX:
        raise ValidationFailed([{"field": "/limit", "message": f"must be 1-{LIMIT_MAX}"}])
    keys = [name for name, _ in sort]
    # The cursor is bound to its list: the collection and the sort, directions included.
    scope = [collection.name, *(f"{name}:{direction}" for name, direction in sort)]
    wanted = dict(query)
    if cursor is not None:
        wanted = {"$and": [wanted, _after(sort, decode_cursor(cursor, scope))]}
    found = list(collection.find(wanted).sort(list(sort)).limit(limit + 1))
    items = found[:limit]
    more = len(found) > limit
    next_cursor = encode_cursor(scope, [items[-1].get(key) for key in keys]) if more else None
    return Page([project(document) for document in items], next_cursor)


def encode_cursor(scope: Sequence[str], values: Sequence[Any]) -> str:
    payload = json_util.dumps({"k": list(scope), "v": list(values)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, scope: Sequence[str]) -> list[Any]:
    """The sort-key values in ``cursor``; ValidationFailed unless it was made for ``scope``
    (the collection, then ``key:direction`` per sort key)."""
    try:
        if len(cursor) > CURSOR_MAX:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json_util.loads(raw.decode())
        values = payload["v"]
        if payload["k"] != list(scope) or len(values) != len(scope) - 1:
            raise ValueError("made for another list")
        if not all(isinstance(value, _SCALARS) and not isinstance(value, bool) for value in values):
            raise ValueError("not a scalar")
        if not isinstance(values[-1], ObjectId):
            raise ValueError("no _id")
    except (ValueError, TypeError, KeyError, binascii.Error, BSONError):
        raise ValidationFailed(
            [{"field": "/cursor", "message": "is not a cursor of this list"}],
            detail="The cursor is not valid; start again without one.",
        ) from None
    return list(values)


def _after(sort: Sequence[tuple[str, int]], values: Sequence[Any]) -> dict[str, Any]:
    """Documents strictly after ``values`` in ``sort`` order (keyset condition)."""
    branches = []
    for index, (name, direction) in enumerate(sort):
        branch: dict[str, Any] = {sort[i][0]: values[i] for i in range(index)}
        branch[name] = {"$gt" if direction == ASCENDING else "$lt": values[index]}
        branches.append(branch)
    return {"$or": branches}
