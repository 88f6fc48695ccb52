"""Per-owner quotas that hold under concurrency: at most ``limit`` things per owner.

Counting an owner's items and then inserting lets two racing creates through (both count
``limit - 1``). A :class:`Quota` keeps one counter document per owner in the ``quotas``
collection and takes a unit with one conditional update (``used < limit`` -> ``used + 1``),
which MongoDB applies atomically to the document: of any number of concurrent reservations,
exactly the units left succeed, on every instance of the app.

    quota = Quota(mongo, "shelf", count=lambda owner: items.count_documents({"owner": owner}))

    with quota.reserve(owner, settings.max_items):  # 409 QUOTA_EXCEEDED when none is left
        items.insert_one(item)  # an exception here gives the unit back
    ...
    if items.delete_one({"_id": item_id, "owner": owner}).deleted_count:
        quota.release(owner)

- The first reservation of an owner without a counter seeds it from ``count(owner)`` (the
  things that already exist), so a quota added to a module with data starts right.
- Counters live beside the data they count (MongoDB, durable), keyed ``<name>:<owner>``; the
  ``name`` (the module's) keeps modules apart. The limit is given per call, so it can come
  from a setting and change without touching the counters.
- A process killed between the reservation and the insert leaves one unit taken that no item
  holds; :meth:`Quota.recount` sets the counter from ``count(owner)`` again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from pymongo.errors import DuplicateKeyError

from core.errors import QuotaExceeded
from core.managers.database.mongo import MongoStore

#: The collection of every quota's counters: ``{_id: "<name>:<owner>", used: n}``.
COLLECTION = "quotas"


class Quota:
    """At most ``limit`` units per owner of the things ``name`` counts (``count(owner)``)."""

    def __init__(self, mongo: MongoStore, name: str, count: Callable[[str], int]) -> None:
        self.name = name
        self.count = count
        self.counters = mongo.collection(COLLECTION)

    def _key(self, owner: str) -> str:
        return f"{self.name}:{owner}"

    def take(self, owner: str, limit: int) -> bool:
        """Take one unit of ``owner``'s quota if one is left; False when it is used up."""
        key = self._key(owner)
        for _ in range(2):
            taken = self.counters.update_one(
                {"_id": key, "used": {"$lt": limit}}, {"$inc": {"used": 1}}
            )
            if taken.modified_count:
                return True
            if self.counters.count_documents({"_id": key}, limit=1):
                return False
            # No counter yet: seed it from what exists (unless a concurrent reservation just
            # did), then take a unit.
            with suppress(DuplicateKeyError):
                self.counters.insert_one({"_id": key, "used": self.count(owner)})
        return False

    def release(self, owner: str) -> None:
        """Give one unit back (after a delete, or when the creation failed)."""
        self.counters.update_one(
            {"_id": self._key(owner), "used": {"$gt": 0}}, {"$inc": {"used": -1}}
        )

    @contextmanager
    def reserve(
        self, owner: str, limit: int, *, code: str | None = None, message: str | None = None
    ) -> Iterator[None]:
        """Hold one unit for the block; raise :class:`QuotaExceeded` (409, ``code``, default
        ``QUOTA_EXCEEDED``) when none is left, give it back when the block raises."""
        if not self.take(owner, limit):
            raise QuotaExceeded(
                message or f"The limit of {limit} is reached; delete one first.", code=code
            )
        try:
            yield
        except BaseException:
            self.release(owner)
            raise

    def used(self, owner: str) -> int:
        """Units ``owner`` holds (``count(owner)`` before the first reservation)."""
        counter = self.counters.find_one({"_id": self._key(owner)})
        return int(counter["used"]) if counter else self.count(owner)

    def recount(self, owner: str) -> int:
        """Set ``owner``'s counter from ``count(owner)`` (after a crash left a unit taken);
        run it while ``owner`` creates nothing. Returns the count."""
        used = self.count(owner)
        self.counters.update_one({"_id": self._key(owner)}, {"$set": {"used": used}}, upsert=True)
        return used
