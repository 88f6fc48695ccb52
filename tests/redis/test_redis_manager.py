"""RedisManager against a real Redis: JSON values, the cache, Lua scripts and pub/sub."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
import redis

from core.devstack import RedisServer
from core.managers.redis import RedisManager, text
from core.testing import AppFactory, manager_of
from tests.support.servers import stopped, wait_until

NESTED: dict[str, Any] = {
    "int": 1,
    "zero_float": 0.0,
    "float": 2.5,
    "big": 2**62,
    "true": True,
    "false": False,
    "none": None,
    "text": "héllo ✓",
    "empty": {},
    "list": [1, 1.0, True, None, "1", [], {"deep": [0, 0.0, False]}],
    "nested": {"a": {"b": {"c": [{"d": -3}]}}},
}


def same_types(left: Any, right: Any) -> bool:
    """Equal values AND the same types all the way down (1 == 1.0 == True in Python)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(same_types(left[k], right[k]) for k in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(map(same_types, left, right))
    return bool(left == right)


@pytest.fixture
def rm(make_app: AppFactory) -> RedisManager:
    manager: RedisManager = manager_of(make_app()).redis
    return manager


def test_json_round_trip_keeps_nested_types(rm: RedisManager) -> None:
    rm.set_json("doc", NESTED)
    assert same_types(rm.get_json("doc"), NESTED)
    # Stored compactly under the namespaced key, as plain JSON other tools can read.
    raw = rm.client.get(rm.key("doc"))
    assert raw is not None
    assert b", " not in raw
    assert b": " not in raw


def test_json_values_that_would_not_round_trip_are_rejected_and_not_written(
    rm: RedisManager,
) -> None:
    with pytest.raises(ValueError, match="not a JSON number"):
        rm.set_json("bad", {"x": [float("nan")]})
    with pytest.raises(ValueError, match="not a JSON number"):
        rm.set_json("bad", float("inf"))
    with pytest.raises(TypeError, match="not a string"):
        rm.set_json("bad", {1: "int key"})
    with pytest.raises(TypeError, match="tuple"):
        rm.set_json("bad", {"t": (1, 2)})
    assert rm.client.exists(rm.key("bad")) == 0


def test_text_reads_back_what_the_clients_return_as_bytes(rm: RedisManager) -> None:
    """The clients do not decode replies; ``text`` is the one way a module turns a key, member
    or field it read back into a string (UTF-8 included), whatever the reply's type."""
    key = rm.key("rooms-like", "hash")
    rm.client.hset(key, mapping={"name": "café ☕", "count": 3})
    rm.client.sadd(rm.key("rooms-like", "set"), "a:b")
    fields = {text(k): text(v) for k, v in rm.client.hgetall(key).items()}
    assert fields == {"name": "café ☕", "count": "3"}
    assert [text(m) for m in rm.client.smembers(rm.key("rooms-like", "set"))] == ["a:b"]
    assert text(rm.client.incr(rm.key("rooms-like", "n"))) == "1"  # an int reply
    with pytest.raises(UnicodeDecodeError):
        text(b"\xff")  # binary is not text: never silently mangled


def test_json_missing_key_gives_the_default(rm: RedisManager) -> None:
    assert rm.get_json("absent") is None
    assert rm.get_json("absent", default={"d": 1}) == {"d": 1}


def test_json_ttl_expires_the_key(rm: RedisManager) -> None:
    rm.set_json("short", [1], ttl=30)
    assert 0 < rm.client.pttl(rm.key("short")) <= 30_000
    with pytest.raises(ValueError, match="ttl"):
        rm.set_json("short", [1], ttl=0)


def test_cached_computes_once_then_hits(rm: RedisManager) -> None:
    calls: list[int] = []

    def compute() -> dict[str, Any]:
        calls.append(1)
        return {"answer": 42, "ratio": 1.0}

    first = rm.cached("answer", 60, compute)
    second = rm.cached("answer", 60, compute)
    assert first == second == {"answer": 42, "ratio": 1.0}
    assert same_types(second, first)
    assert len(calls) == 1
    assert 0 < rm.client.pttl(rm.key("answer")) <= 60_000


def test_cached_none_is_a_hit(rm: RedisManager) -> None:
    calls: list[int] = []

    def compute() -> None:
        calls.append(1)

    assert rm.cached("nothing", 60, compute) is None
    assert rm.cached("nothing", 60, compute) is None
    assert len(calls) == 1


def test_cached_does_not_cache_a_failing_compute(rm: RedisManager) -> None:
    def failing() -> int:
        raise RuntimeError("backend down")

    with pytest.raises(RuntimeError, match="backend down"):
        rm.cached("flaky", 60, failing)
    assert rm.client.exists(rm.key("flaky")) == 0
    assert rm.cached("flaky", 60, lambda: 7) == 7


def test_lua_script_is_reloaded_after_script_flush(rm: RedisManager) -> None:
    # A unique source, so the SHA is unknown to the shared server before this test.
    lua = f"-- {uuid.uuid4().hex}\nredis.call('SET', KEYS[1], ARGV[1])\nreturn ARGV[1]"
    script = rm.register_script("test.set", lua)
    assert rm.register_script("test.set", lua) is script

    assert rm.call_script("test.set", ["k"], ["one"]) == b"one"
    assert script.loads == 1  # first call: NOSCRIPT, loaded
    assert rm.call_script("test.set", ["k"], ["two"]) == b"two"
    assert script.loads == 1  # EVALSHA hit

    rm.client.script_flush()
    assert rm.client.script_exists(script.sha) == [False]
    assert rm.call_script("test.set", ["k"], ["three"]) == b"three"
    assert script.loads == 2
    # Keys given to scripts are namespaced like every other key.
    assert rm.client.get(rm.key("k")) == b"three"


def test_registering_another_script_under_a_taken_name_fails(rm: RedisManager) -> None:
    rm.register_script("test.name", "return 1")
    with pytest.raises(ValueError, match="already registered"):
        rm.register_script("test.name", "return 2")
    with pytest.raises(KeyError, match="no lua script"):
        rm.call_script("test.unknown")


def test_a_lua_error_is_raised_not_retried(rm: RedisManager) -> None:
    rm.register_script("test.error", "return redis.error_reply('nope')")
    with pytest.raises(redis.ResponseError, match="nope"):
        rm.call_script("test.error")


def test_publish_on_one_instance_reaches_a_subscriber_on_another(make_app: AppFactory) -> None:
    sender: RedisManager = manager_of(make_app()).redis
    receiver: RedisManager = manager_of(make_app()).redis
    received: list[dict[str, Any]] = []
    assert receiver.subscribe("events", received.append) is True

    assert sender.publish("events", {"kind": "hello", "n": 1, "f": 1.0}) == 1
    wait_until(lambda: received, what="the message on the other instance")
    assert same_types(received, [{"kind": "hello", "n": 1, "f": 1.0}])


def test_channels_are_namespaced_by_the_key_prefix(make_app: AppFactory) -> None:
    other: RedisManager = manager_of(
        make_app({"REDIS_KEY_PREFIX": f"o{uuid.uuid4().hex[:8]}:"})
    ).redis
    mine: RedisManager = manager_of(make_app()).redis
    theirs: list[dict[str, Any]] = []
    ours: list[dict[str, Any]] = []
    other.subscribe("events", theirs.append)
    mine.subscribe("events", ours.append)

    mine.publish("events", {"for": "mine"})
    wait_until(lambda: ours, what="our own message")
    assert theirs == []


def test_a_failing_callback_is_logged_and_the_listener_carries_on(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    rm: RedisManager = manager_of(make_app()).redis
    received: list[dict[str, Any]] = []

    def broken(message: dict[str, Any]) -> None:
        raise RuntimeError("callback bug")

    rm.subscribe("events", broken)
    rm.subscribe("events", received.append)
    rm.publish("events", {"n": 1})
    rm.client.publish(rm.key("events"), b"not json")  # dropped, logged
    rm.publish("events", {"n": 2})
    wait_until(lambda: len(received) == 2, what="both messages")
    assert received == [{"n": 1}, {"n": 2}]
    assert "pub/sub callback failed" in caplog.text
    assert "not JSON" in caplog.text


def test_listener_reconnects_after_a_redis_restart_and_still_delivers(
    make_app: AppFactory, redis_server: RedisServer
) -> None:
    sender: RedisManager = manager_of(make_app()).redis
    receiver: RedisManager = manager_of(make_app()).redis
    received: list[dict[str, Any]] = []
    receiver.subscribe("events", received.append)
    epoch = receiver.pubsub_epoch

    with stopped(redis_server):
        wait_until(lambda: not receiver.pubsub_connected, what="the listener to notice")
        with pytest.raises(redis.ConnectionError):
            sender.publish("events", {"lost": True})

    def delivered() -> bool:
        try:
            sender.publish("events", {"after": "restart"})
        except redis.ConnectionError:
            return False
        return bool(received)

    wait_until(delivered, timeout=15, what="a message after the restart")
    assert received[0] == {"after": "restart"}
    assert receiver.pubsub_connected
    assert receiver.pubsub_epoch > epoch  # it subscribed again


def test_close_stops_the_listener_thread_quickly(make_app: AppFactory) -> None:
    before = set(threading.enumerate())
    rm: RedisManager = manager_of(make_app()).redis
    rm.subscribe("events", lambda message: None)
    # The manager's one listener thread (the StateManager subscribed at start-up too).
    [thread] = [t for t in threading.enumerate() if t.name == "redis-pubsub" and t not in before]
    assert thread.is_alive()

    rm.close()
    rm.close()  # idempotent
    assert not thread.is_alive()
    with pytest.raises(RuntimeError, match="closed"):
        rm.subscribe("events", lambda message: None)


def test_health_reports_latency_and_the_listener(make_app: AppFactory) -> None:
    rm: RedisManager = manager_of(make_app()).redis
    rm.subscribe("events", lambda message: None)
    health = rm.health()
    assert health["status"] == "ok"
    assert isinstance(health["latency_ms"], float)
    assert health["pubsub"] == "connected"
