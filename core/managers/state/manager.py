"""StateManager: named state machines declared in code, versioned and shared by every instance.

A machine's value ``{state, version, data, updated_at}`` lives in Redis (the authority: a
transition is one Lua compare-and-set on the version), in MongoDB (collection ``states``, one
upserted document per machine; Redis is rebuilt from it when the key is lost), see
:mod:`.store`, and in a local cache per instance. Every transition is announced on the pub/sub
channel ``state``, which keeps the caches coherent, so reads cost no round trip. A cache entry
is re-read from Redis when older than ``cache_max_age`` seconds, or ``offline_max_age`` while
pub/sub is down or has reconnected since the entry was read (messages may have been lost).

``transition()`` failure semantics (nothing is half-written):

- Redis down before or at the compare-and-set: ``DependencyUnavailable("redis")``; nothing
  was written anywhere.
- MongoDB down after the compare-and-set: Redis is compare-and-set back to the old value,
  nothing is announced, ``DependencyUnavailable("mongodb")``. Only if Redis fails in that
  instant too does Redis stay ahead of MongoDB (logged); the next transition re-syncs them.
- The announcement fails: the transition is committed in both stores and stands; other
  instances see it within ``offline_max_age`` (their pub/sub is down too) or ``cache_max_age``.

Reads survive a Redis outage: the cached value, else MongoDB's copy.

On every instance that sees a change, callbacks registered with :meth:`on_change` run and the
hook ``state.changed`` (``name``, ``old``, ``new``: :class:`StateValue`) is emitted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.errors import DependencyUnavailable, IllegalTransition, StateConflict
from core.managers.base import HealthResult, Manager
from core.managers.database.mongo import MongoStore
from core.managers.hooks import HooksManager
from core.managers.redis import RedisManager, codec
from core.managers.state.store import Machine, StateStore, StateValue, iso

logger = logging.getLogger(__name__)

CHANNEL = "state"

ChangeCallback = Callable[[str, StateValue, StateValue], None]


@dataclass(frozen=True)
class _Entry:
    value: StateValue
    checked_at: float
    epoch: int  # the pub/sub epoch when read; -1: not coherent (a fallback value)


class StateManager(Manager):
    name = "state"

    def __init__(
        self,
        redis: RedisManager,
        mongo: MongoStore,
        hooks: HooksManager,
        *,
        cache_max_age: float = 5.0,
        offline_max_age: float = 1.0,
    ) -> None:
        self._redis = redis
        self._store = StateStore(redis, mongo)
        self._hooks = hooks
        self.cache_max_age = cache_max_age
        self.offline_max_age = offline_max_age
        self._machines: dict[str, Machine] = {}
        self._callbacks: dict[str, tuple[ChangeCallback, ...]] = {}
        self._cache: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._refreshing = threading.Lock()
        self._applied = 0  # bumped by every accepted change; a read racing one is dropped
        self._listening = False

    # -- declaration ---------------------------------------------------------------------

    def define(
        self,
        name: str,
        states: Iterable[str],
        transitions: Mapping[str, Iterable[str]],
        initial: str,
    ) -> Machine:
        """Declare machine ``name``; ``transitions`` maps a state to the states it may go to."""
        all_states = frozenset(states)
        edges = {source: frozenset(targets) for source, targets in transitions.items()}
        unknown = ({initial} | set(edges) | set().union(*edges.values())) - all_states
        if unknown:
            raise ValueError(f"state machine {name!r}: unknown states {sorted(unknown)}")
        machine = Machine(name, all_states, edges, initial)
        with self._lock:
            existing = self._machines.setdefault(name, machine)
        if existing != machine:
            raise ValueError(f"state machine {name!r} is already defined differently")
        return machine

    def on_change(self, name: str, callback: ChangeCallback) -> None:
        """Call ``callback(name, old, new)`` on this instance whenever ``name`` changes."""
        self._machine(name)
        with self._lock:
            self._callbacks[name] = (*self._callbacks.get(name, ()), callback)

    # -- reads ---------------------------------------------------------------------------

    def get(self, name: str) -> StateValue:
        """The current value, from the local cache while it is fresh (no round trip)."""
        machine = self._machine(name)
        entry = self._cache.get(name)
        if entry is None:
            return self._refresh(machine, None)
        if self._fresh(entry):
            return entry.value
        # One thread re-reads; the others serve the cached value meanwhile, so a slow or
        # dead Redis costs one request per interval its timeout, not every request.
        if not self._refreshing.acquire(blocking=False):
            return entry.value
        try:
            return self._refresh(machine, entry)
        finally:
            self._refreshing.release()

    def refresh(self, name: str) -> StateValue:
        """The current value read from Redis now (MongoDB's copy while Redis is down)."""
        return self._refresh(self._machine(name), None)

    def _fresh(self, entry: _Entry) -> bool:
        age = time.monotonic() - entry.checked_at
        coherent = (
            self._listening
            and self._redis.pubsub_connected
            and entry.epoch == self._redis.pubsub_epoch
        )
        return age < (self.cache_max_age if coherent else self.offline_max_age)

    def _refresh(self, machine: Machine, entry: _Entry | None) -> StateValue:
        epoch, applied = self._redis.pubsub_epoch, self._applied
        try:
            value = self._store.load(machine)
        except DependencyUnavailable as exc:
            if exc.dependency != "redis":
                raise
            return self._fallback(machine, entry, exc)
        with self._lock:
            previous = self._cache.get(machine.name)
            raced = applied != self._applied  # an announcement landed during the read
            if raced and previous is not None and previous.value.version >= value.version:
                return previous.value
            self._cache[machine.name] = _Entry(value, time.monotonic(), epoch)
        if previous is not None and previous.value != value:
            self._notify(machine.name, previous.value, value)
        return value

    def _fallback(
        self, machine: Machine, entry: _Entry | None, error: DependencyUnavailable
    ) -> StateValue:
        """Redis is down: serve the cached value, else MongoDB's; Redis is retried later."""
        if entry is not None:
            value = entry.value
        else:
            try:
                value = self._store.read_mongo(machine)
            except DependencyUnavailable:
                raise error from None
        logger.warning("state served without redis", extra={"machine": machine.name})
        with self._lock:
            if self._cache.get(machine.name) is entry:
                self._cache[machine.name] = _Entry(value, time.monotonic(), -1)
        return value

    # -- transitions ---------------------------------------------------------------------

    def transition(
        self,
        name: str,
        to_state: str,
        data: Mapping[str, Any] | None = None,
        expected_version: int | None = None,
    ) -> StateValue:
        """Move ``name`` to ``to_state`` with ``data`` (replacing the old data).

        Raises StateConflict when the version is not ``expected_version`` (or moved during
        the call), IllegalTransition when the machine does not allow it, and
        DependencyUnavailable when Redis or MongoDB is down (see the module docstring).
        """
        machine = self._machine(name)
        payload = dict(data or {})
        codec.dumps(payload)  # reject what would not round-trip, before touching anything
        current = self._store.load(machine)
        if expected_version is not None and expected_version != current.version:
            raise StateConflict(f"{name} is at version {current.version}, not {expected_version}.")
        if not machine.allows(current.state, to_state):
            raise IllegalTransition(f"{name} cannot go from {current.state!r} to {to_state!r}.")
        now = datetime.now(UTC)
        new = StateValue(to_state, current.version + 1, payload, iso(now))
        self._store.compare_and_set(name, current.version, new)
        try:
            self._store.persist(name, new, now)
        except BaseException:
            self._store.roll_back(name, new, current)
            raise
        if self._accept(name, new):
            self._notify(name, current, new)
        announcement = {"name": name, "old": current.to_dict(), "new": new.to_dict()}
        try:
            self._redis.publish(CHANNEL, announcement)
        except RedisManager.unavailable_errors as exc:
            logger.warning(
                "state change not announced",
                extra={"machine": name, "version": new.version, "error": type(exc).__name__},
            )
        return new

    # -- coherence across instances ------------------------------------------------------

    def start(self) -> None:
        """Listen for announcements from other instances (the CLI does without)."""
        with self._lock:
            if self._listening:
                return
            self._listening = True
        self._redis.subscribe(CHANNEL, self._on_message)

    def _on_message(self, message: dict[str, Any]) -> None:
        name = message.get("name")
        if not isinstance(name, str) or name not in self._machines:
            return  # a machine this instance does not declare
        new = StateValue.from_dict(message["new"])
        if self._accept(name, new):
            self._notify(name, StateValue.from_dict(message["old"]), new)

    def _accept(self, name: str, new: StateValue) -> bool:
        """Cache ``new`` unless the cache already holds this version or a later one."""
        with self._lock:
            entry = self._cache.get(name)
            if entry is not None and entry.value.version >= new.version:
                return False
            self._applied += 1
            self._cache[name] = _Entry(new, time.monotonic(), self._redis.pubsub_epoch)
            return True

    def _notify(self, name: str, old: StateValue, new: StateValue) -> None:
        for callback in self._callbacks.get(name, ()):
            try:
                callback(name, old, new)
            except Exception:
                logger.exception("state callback failed", extra={"machine": name})
        try:
            self._hooks.emit("state.changed", name=name, old=old, new=new)
        except Exception:  # a strict hook cannot veto a committed change
            logger.exception("state.changed hook failed", extra={"machine": name})

    # -- contract ------------------------------------------------------------------------

    def _machine(self, name: str) -> Machine:
        try:
            return self._machines[name]
        except KeyError:
            raise KeyError(f"no state machine named {name!r}") from None

    def health(self) -> HealthResult:
        return {
            "status": "ok",
            "latency_ms": 0.0,
            "machines": sorted(self._machines),
            "pubsub": self._listening and self._redis.pubsub_connected,
        }

    def close(self) -> None:
        with self._lock:
            listening, self._listening = self._listening, False
        if listening:
            self._redis.unsubscribe(CHANNEL, self._on_message)
