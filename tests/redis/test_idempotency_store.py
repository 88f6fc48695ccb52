"""The idempotency store on a real Redis: one request runs per (caller, key), its answer is
replayed, a different request with the key is refused, racing duplicates get one winner."""

from __future__ import annotations

import threading
import time

import pytest

from core.managers.idempotency import (
    IdempotencyStore,
    InUse,
    Mismatch,
    Replay,
    Reserved,
    fingerprint,
)
from core.managers.redis import RedisManager
from core.testing import AppFactory, manager_of

FP = fingerprint("POST", "/actions/notes.create", b'{"title":"a"}')


@pytest.fixture
def redis(make_app: AppFactory) -> RedisManager:
    manager: RedisManager = manager_of(make_app()).redis
    return manager


def test_the_first_answer_is_replayed_to_a_retry(redis: RedisManager) -> None:
    store = IdempotencyStore(redis, ttl=60)
    reserved = store.begin("user:u1", "key-1", FP)
    assert isinstance(reserved, Reserved)
    assert store.finish(reserved, 201, '{"id":"n1"}', "application/json")
    assert store.begin("user:u1", "key-1", FP) == Replay(201, '{"id":"n1"}', "application/json")


def test_a_running_first_request_makes_a_retry_wait(redis: RedisManager) -> None:
    store = IdempotencyStore(redis, ttl=60)
    assert isinstance(store.begin("user:u1", "key-1", FP), Reserved)
    assert store.begin("user:u1", "key-1", FP) == InUse()


def test_another_request_with_the_key_is_a_mismatch_whatever_its_state(
    redis: RedisManager,
) -> None:
    store = IdempotencyStore(redis, ttl=60)
    other = fingerprint("POST", "/actions/notes.create", b'{"title":"b"}')
    reserved = store.begin("user:u1", "key-1", FP)
    assert store.begin("user:u1", "key-1", other) == Mismatch()
    assert isinstance(reserved, Reserved)
    store.finish(reserved, 200, "{}", "application/json")
    assert store.begin("user:u1", "key-1", other) == Mismatch()


def test_keys_are_scoped_to_the_caller(redis: RedisManager) -> None:
    store = IdempotencyStore(redis, ttl=60)
    assert isinstance(store.begin("user:u1", "key-1", FP), Reserved)
    assert isinstance(store.begin("user:u2", "key-1", FP), Reserved)
    assert isinstance(store.begin("api_key:k1", "key-1", FP), Reserved)


def test_an_abandoned_key_runs_again(redis: RedisManager) -> None:
    store = IdempotencyStore(redis, ttl=60)
    first = store.begin("user:u1", "key-1", FP)
    assert isinstance(first, Reserved)
    assert store.abandon(first)
    second = store.begin("user:u1", "key-1", FP)
    assert isinstance(second, Reserved)
    assert not store.finish(first, 200, "{}", "application/json")  # no longer its record
    assert not store.abandon(first)
    assert store.begin("user:u1", "key-1", FP) == InUse()


def test_records_expire_after_the_ttl(redis: RedisManager) -> None:
    store = IdempotencyStore(redis, ttl=0.3)
    reserved = store.begin("user:u1", "key-1", FP)
    assert isinstance(reserved, Reserved)
    store.finish(reserved, 200, "{}", "application/json")  # keeps the first request's expiry
    time.sleep(0.5)
    assert isinstance(store.begin("user:u1", "key-1", FP), Reserved)


def test_racing_duplicates_get_exactly_one_runner(redis: RedisManager) -> None:
    store = IdempotencyStore(redis, ttl=60)
    racers = 10
    barrier = threading.Barrier(racers)
    outcomes: list[str] = []

    def race() -> None:
        barrier.wait(10)
        outcomes.append(type(store.begin("user:u1", "key-1", FP)).__name__)

    threads = [threading.Thread(target=race) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["InUse"] * (racers - 1) + ["Reserved"]


def test_the_fingerprint_separates_its_parts() -> None:
    assert fingerprint("ab", "c") != fingerprint("a", "bc")
    assert fingerprint("POST", "/x", b"{}") == fingerprint("POST", "/x", b"{}")
