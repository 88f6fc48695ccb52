"""Per-owner quotas on a real MongoDB: racing creates never pass the limit, a failed creation
gives its unit back, and a quota added to existing data starts from what exists."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from pymongo.collection import Collection

from core.errors import QuotaExceeded
from core.managers.database import MongoStore, Quota
from core.testing import AppFactory, manager_of


@pytest.fixture
def mongo(make_app: AppFactory) -> MongoStore:
    store: MongoStore = manager_of(make_app()).database.mongo
    return store


def things(mongo: MongoStore) -> Collection[dict[str, Any]]:
    return mongo.collection("quota_things")


def quota_of(mongo: MongoStore, name: str = "things") -> Quota:
    return Quota(mongo, name, count=lambda owner: things(mongo).count_documents({"owner": owner}))


def test_racing_creates_never_pass_the_limit(mongo: MongoStore) -> None:
    quota, limit, racers = quota_of(mongo), 4, 12
    barrier = threading.Barrier(racers)
    outcomes: list[str] = []

    def create() -> None:
        barrier.wait(10)
        try:
            with quota.reserve("alice", limit):
                things(mongo).insert_one({"owner": "alice"})
            outcomes.append("created")
        except QuotaExceeded as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=create) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["QUOTA_EXCEEDED"] * (racers - limit) + ["created"] * limit
    assert things(mongo).count_documents({"owner": "alice"}) == limit
    assert quota.used("alice") == limit


def test_a_failed_creation_gives_its_unit_back(mongo: MongoStore) -> None:
    quota = quota_of(mongo)
    with pytest.raises(RuntimeError), quota.reserve("alice", 1):
        raise RuntimeError("the insert failed")
    assert quota.used("alice") == 0
    with quota.reserve("alice", 1):
        things(mongo).insert_one({"owner": "alice"})
    with pytest.raises(QuotaExceeded), quota.reserve("alice", 1):
        pass
    assert quota.used("alice") == 1


def test_a_delete_releases_a_unit_and_owners_and_names_are_apart(mongo: MongoStore) -> None:
    quota, other = quota_of(mongo), quota_of(mongo, "others")
    with quota.reserve("alice", 1):
        inserted = things(mongo).insert_one({"owner": "alice"}).inserted_id
    with quota.reserve("bob", 1):  # bob's own unit
        things(mongo).insert_one({"owner": "bob"})
    with other.reserve("alice", 5):  # another quota name counts apart
        pass
    with pytest.raises(QuotaExceeded, match="limit of 1"), quota.reserve("alice", 1):
        pass
    assert things(mongo).delete_one({"_id": inserted}).deleted_count == 1
    quota.release("alice")
    quota.release("alice")  # a second release never goes below zero
    assert quota.used("alice") == 0
    with quota.reserve("alice", 1):
        pass


def test_a_new_quota_starts_from_what_exists(mongo: MongoStore) -> None:
    things(mongo).insert_many([{"owner": "carol"} for _ in range(3)])
    quota = quota_of(mongo)
    assert quota.used("carol") == 3
    with pytest.raises(QuotaExceeded) as refused, quota.reserve("carol", 3, code="SHELF_FULL"):
        pass
    assert (refused.value.status, refused.value.code) == (409, "SHELF_FULL")
    with quota.reserve("carol", 4):  # a higher limit (a changed setting) leaves room again
        things(mongo).insert_one({"owner": "carol"})
    assert quota.used("carol") == 4


def test_recount_sets_the_counter_from_the_data(mongo: MongoStore) -> None:
    quota = quota_of(mongo)
    assert quota.take("dave", 5)  # a unit taken, then the process died before the insert
    assert quota.used("dave") == 1
    assert quota.recount("dave") == 0
    assert quota.used("dave") == 0
