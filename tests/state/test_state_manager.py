"""StateManager against real Redis and MongoDB: CAS, persistence, recovery, coherence, outages."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from core.app_manager import AppManager
from core.devstack import MongoServer, RedisServer
from core.errors import DependencyUnavailable, IllegalTransition, StateConflict
from core.managers.state import StateManager, StateValue
from core.managers.state.store import StateStore
from core.testing import AppFactory, manager_of
from tests.support.servers import stopped, wait_until

DOC = "document"
STATES = {"draft", "review", "published"}
TRANSITIONS = {"draft": {"review"}, "review": {"draft", "published"}, "published": set()}


def instance(make_app: AppFactory, overrides: dict[str, str] | None = None) -> AppManager:
    """An app instance with the test machine declared, as a module would at start-up."""
    manager = manager_of(make_app(overrides))
    manager.state.define(DOC, STATES, TRANSITIONS, initial="draft")
    return manager


def stored(manager: AppManager) -> dict[str, Any] | None:
    return manager.database.mongo.collection("states").find_one({"_id": DOC})


def test_a_machine_starts_in_its_initial_state(make_app: AppFactory) -> None:
    value = instance(make_app).state.get(DOC)
    assert value == StateValue("draft", 0, {}, None)


def test_transition_bumps_the_version_and_replaces_the_data(make_app: AppFactory) -> None:
    state = instance(make_app).state
    first = state.transition(DOC, "review", {"by": "ana", "round": 1})
    second = state.transition(DOC, "draft", {"note": "fix typos"}, expected_version=1)

    assert (first.state, first.version, first.data) == ("review", 1, {"by": "ana", "round": 1})
    assert (second.state, second.version, second.data) == ("draft", 2, {"note": "fix typos"})
    assert second.updated_at is not None
    assert second.updated_at.endswith("Z")
    assert state.get(DOC) == second
    assert state.refresh(DOC) == second


def test_an_illegal_transition_raises_and_changes_nothing(make_app: AppFactory) -> None:
    state = instance(make_app).state
    with pytest.raises(IllegalTransition, match="'draft' to 'published'"):
        state.transition(DOC, "published")
    with pytest.raises(IllegalTransition):
        state.transition(DOC, "no-such-state")
    assert state.refresh(DOC).version == 0


def test_a_stale_expected_version_is_a_conflict(make_app: AppFactory) -> None:
    state = instance(make_app).state
    state.transition(DOC, "review")
    with pytest.raises(StateConflict, match="version 1, not 0"):
        state.transition(DOC, "draft", expected_version=0)
    assert state.refresh(DOC).state == "review"


def test_two_concurrent_writers_one_wins_the_other_gets_a_conflict(
    make_app: AppFactory,
) -> None:
    writers = [instance(make_app).state, instance(make_app).state]

    def write(
        state: StateManager, barrier: threading.Barrier, outcomes: list[str], version: int
    ) -> None:
        target = "review" if version % 2 == 0 else "draft"
        barrier.wait(timeout=5)
        try:
            state.transition(DOC, target, {"writer": id(state)}, expected_version=version)
        except StateConflict:
            outcomes.append("conflict")
        else:
            outcomes.append("won")

    for version in range(5):
        barrier = threading.Barrier(2)
        outcomes: list[str] = []
        threads = [
            threading.Thread(target=write, args=(s, barrier, outcomes, version)) for s in writers
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        assert sorted(outcomes) == ["conflict", "won"], f"round {version}"
    final = writers[0].refresh(DOC)
    assert (final.state, final.version) == ("review", 5)


def test_state_is_persisted_as_one_upserted_document_per_machine(make_app: AppFactory) -> None:
    manager = instance(make_app)
    manager.state.transition(DOC, "review", {"by": "ana"})
    manager.state.transition(DOC, "published", {"by": "bob", "score": 1.5})

    collection = manager.database.mongo.collection("states")
    assert collection.count_documents({}) == 1
    document = stored(manager)
    assert document is not None
    assert document["state"] == "published"
    assert document["version"] == 2
    assert document["data"] == {"by": "bob", "score": 1.5}
    assert isinstance(document["updated_at"], datetime)


def test_state_is_recovered_from_mongodb_when_redis_lost_the_key(
    make_app: AppFactory,
) -> None:
    writer = instance(make_app)
    written = writer.state.transition(DOC, "review", {"by": "ana", "n": 1})
    writer.redis.client.delete(writer.redis.key("state", DOC))

    reader = instance(make_app)  # a fresh instance: nothing cached
    assert reader.state.get(DOC) == written
    assert writer.redis.client.exists(writer.redis.key("state", DOC)) == 1
    # Versions carry on from the recovered one.
    assert reader.state.transition(DOC, "published", expected_version=1).version == 2


def test_a_change_reaches_every_instance_with_callbacks_and_hooks(make_app: AppFactory) -> None:
    writer, reader = instance(make_app), instance(make_app)
    assert reader.state.get(DOC).state == "draft"  # cached on the reader
    seen: dict[str, list[tuple[str, str, str]]] = {"writer": [], "reader": [], "hook": []}

    def recorder(where: str) -> Any:
        def record(name: str, old: StateValue, new: StateValue) -> None:
            seen[where].append((name, old.state, new.state))

        return record

    writer.state.on_change(DOC, recorder("writer"))
    reader.state.on_change(DOC, recorder("reader"))
    reader.hooks.register(
        "state.changed", lambda name, old, new: seen["hook"].append((name, old.state, new.state))
    )
    announcements: list[dict[str, Any]] = []
    writer.redis.subscribe("state", announcements.append)

    writer.state.transition(DOC, "review")
    wait_until(lambda: seen["reader"] and seen["hook"], what="the change on the reader")
    wait_until(lambda: announcements, what="the writer's own announcement")

    assert seen["reader"] == seen["hook"] == [(DOC, "draft", "review")]
    assert seen["writer"] == [(DOC, "draft", "review")]  # once, not again for its own echo
    assert reader.state.get(DOC).state == "review"


def test_reads_are_served_from_the_cache_without_a_redis_round_trip(
    make_app: AppFactory,
) -> None:
    manager = instance(make_app)
    manager.state.get(DOC)
    before = manager.redis.client.info("stats")["total_commands_processed"]
    for _ in range(200):
        manager.state.get(DOC)
    after = manager.redis.client.info("stats")["total_commands_processed"]
    assert after - before < 20  # INFO itself and idle pings, never one per read


def test_redis_down_during_a_transition_raises_and_writes_nothing(
    make_app: AppFactory, redis_server: RedisServer
) -> None:
    manager = instance(make_app)
    committed = manager.state.transition(DOC, "review", {"by": "ana"})

    with stopped(redis_server):
        with pytest.raises(DependencyUnavailable) as raised:
            manager.state.transition(DOC, "published", {"by": "bob"})
        assert raised.value.dependency == "redis"
        assert raised.value.code == "DEPENDENCY_UNAVAILABLE"
        document = stored(manager)
        assert document is not None
        assert (document["state"], document["version"]) == ("review", 1)

    assert manager.state.refresh(DOC) == committed


def test_reads_during_a_redis_outage_fall_back_to_mongodb(
    make_app: AppFactory, redis_server: RedisServer
) -> None:
    writer = instance(make_app)
    committed = writer.state.transition(DOC, "review", {"by": "ana"})
    reader = instance(make_app)  # started before the outage, nothing cached yet

    with stopped(redis_server):
        assert reader.state.get(DOC) == committed


def test_mongodb_down_after_the_compare_and_set_rolls_redis_back(
    make_app: AppFactory, mongodb_server: MongoServer
) -> None:
    manager = instance(make_app, {"MONGODB_SERVER_SELECTION_TIMEOUT_MS": "300"})
    committed = manager.state.transition(DOC, "review", {"by": "ana"})
    changes: list[str] = []
    manager.state.on_change(DOC, lambda name, old, new: changes.append(new.state))

    with stopped(mongodb_server):
        with pytest.raises(DependencyUnavailable) as raised:
            manager.state.transition(DOC, "published", {"by": "bob"})
        assert raised.value.dependency == "mongodb"
        assert manager.state.refresh(DOC) == committed

    document = stored(manager)
    assert document is not None
    assert (document["state"], document["version"]) == ("review", 1)
    assert changes == []


def test_definitions_are_checked(make_app: AppFactory) -> None:
    state = instance(make_app).state
    with pytest.raises(ValueError, match="unknown states"):
        state.define("broken", {"a"}, {"a": {"b"}}, initial="a")
    with pytest.raises(ValueError, match="already defined differently"):
        state.define(DOC, {"draft"}, {}, initial="draft")
    state.define(DOC, STATES, TRANSITIONS, initial="draft")  # the same again is fine
    with pytest.raises(KeyError, match="no state machine"):
        state.get("undeclared")
    with pytest.raises(TypeError):
        state.transition(DOC, "review", {"when": datetime.now()})


def test_an_older_version_never_overwrites_a_newer_persisted_one(make_app: AppFactory) -> None:
    manager = instance(make_app)
    store = StateStore(manager.redis, manager.database.mongo)
    newer = StateValue("published", 3, {"n": 3}, None)
    older = StateValue("review", 2, {"n": 2}, None)
    store.persist(DOC, newer, datetime.now(UTC))
    store.persist(DOC, older, datetime.now(UTC))  # a slow writer arriving late

    document = stored(manager)
    assert document is not None
    assert (document["state"], document["version"], document["data"]) == ("published", 3, {"n": 3})
