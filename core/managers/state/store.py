"""Where state values live: Redis (the authority, compare-and-set in Lua) and MongoDB (the
durable copy Redis is rebuilt from).

Redis: hash ``<prefix>state:<name>`` with ``version`` and ``value`` (the JSON of the value).
MongoDB: collection ``states``, one document per machine, ``_id`` = name, upserted.
Every method raises ``DependencyUnavailable("redis"|"mongodb")`` when a store is down.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from core.errors import DependencyUnavailable, StateConflict
from core.managers.database.mongo import MongoStore
from core.managers.redis import RedisManager, codec

logger = logging.getLogger(__name__)

COLLECTION = "states"

# ARGV: expected version, new version, new value. Returns {status, current version}: 1 written
# (or already written: a retried call after a lost reply), 0 version mismatch, -1 key missing.
_CAS = """
local current = redis.call('HGET', KEYS[1], 'version')
if not current then return {-1, -1} end
if tonumber(current) ~= tonumber(ARGV[1]) then
  if tonumber(current) == tonumber(ARGV[2]) and redis.call('HGET', KEYS[1], 'value') == ARGV[3]
  then return {1, tonumber(current)} end
  return {0, tonumber(current)}
end
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'value', ARGV[3])
return {1, tonumber(ARGV[2])}
"""
# ARGV: version, value. Writes them only if the key is absent; returns the stored value.
_INIT = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'version', ARGV[1], 'value', ARGV[2])
end
return redis.call('HGET', KEYS[1], 'value')
"""


@dataclass(frozen=True)
class StateValue:
    """The value of one machine; ``updated_at`` is ISO 8601 UTC (None before any transition).

    ``data`` is shared with the cache: treat it as read-only.
    """

    state: str
    version: int
    data: dict[str, Any]
    updated_at: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> StateValue:
        return cls(str(raw["state"]), int(raw["version"]), dict(raw["data"]), raw["updated_at"])


@dataclass(frozen=True)
class Machine:
    """A declared state machine: its states, allowed transitions and initial state."""

    name: str
    states: frozenset[str]
    transitions: Mapping[str, frozenset[str]]
    initial: str

    def allows(self, source: str, target: str) -> bool:
        return target in self.transitions.get(source, frozenset())

    @property
    def initial_value(self) -> StateValue:
        return StateValue(self.initial, 0, {}, None)


class StateStore:
    """Reads and compare-and-set writes of state values in Redis and MongoDB."""

    def __init__(self, redis: RedisManager, mongo: MongoStore) -> None:
        self._redis = redis
        self._mongo = mongo
        redis.register_script("state.cas", _CAS)
        redis.register_script("state.init", _INIT)

    def load(self, machine: Machine) -> StateValue:
        """Read Redis; rebuild the key from MongoDB (or the initial state) when it is missing."""
        try:
            raw = self._redis.client.hget(self._redis.key(_key(machine.name)), "value")
            if raw is None:
                recovered = self.read_mongo(machine)
                raw = self._redis.call_script(
                    "state.init",
                    [_key(machine.name)],
                    [recovered.version, codec.dumps(recovered.to_dict())],
                )
                logger.info(
                    "state key rebuilt",
                    extra={"machine": machine.name, "version": recovered.version},
                )
        except RedisManager.unavailable_errors as exc:
            raise DependencyUnavailable("redis") from exc
        return StateValue.from_dict(codec.loads(raw))

    def read_mongo(self, machine: Machine) -> StateValue:
        """The durable copy (the initial value when the machine never changed)."""
        try:
            doc = self._mongo.collection(COLLECTION).find_one({"_id": machine.name})
        except MongoStore.unavailable_errors as exc:
            raise DependencyUnavailable("mongodb") from exc
        if doc is None:
            return machine.initial_value
        updated_at = doc.get("updated_at")
        return StateValue(
            doc["state"],
            int(doc["version"]),
            dict(doc.get("data") or {}),
            iso(updated_at) if isinstance(updated_at, datetime) else None,
        )

    def compare_and_set(self, name: str, expected: int, new: StateValue) -> None:
        """Write ``new`` if Redis still holds version ``expected``, else StateConflict."""
        try:
            status, version = self._redis.call_script(
                "state.cas", [_key(name)], [expected, new.version, codec.dumps(new.to_dict())]
            )
        except RedisManager.unavailable_errors as exc:
            raise DependencyUnavailable("redis") from exc
        if status == 0:
            raise StateConflict(f"{name} is at version {version}, not {expected}.")
        if status != 1:
            raise StateConflict(f"{name} was reset while changing it; retry.")

    def persist(self, name: str, value: StateValue, updated_at: datetime) -> None:
        """Upsert the machine's document, never over a newer version."""
        document = {
            "state": value.state,
            "version": value.version,
            "data": value.data,
            "updated_at": updated_at,
        }
        try:
            self._mongo.collection(COLLECTION).update_one(
                {"_id": name, "version": {"$lt": value.version}}, {"$set": document}, upsert=True
            )
        except DuplicateKeyError:
            # The document already holds a newer version (persisted first by a later
            # transition): the older write must not overwrite it.
            logger.info("older state not persisted", extra={"machine": name})
        except MongoStore.unavailable_errors as exc:
            raise DependencyUnavailable("mongodb") from exc

    def roll_back(self, name: str, new: StateValue, old: StateValue) -> None:
        """Compare-and-set Redis back from ``new`` to ``old``; logged when impossible."""
        try:
            status, _ = self._redis.call_script(
                "state.cas", [_key(name)], [new.version, old.version, codec.dumps(old.to_dict())]
            )
            outcome = "rolled back" if status == 1 else "moved on"
        except RedisManager.unavailable_errors as exc:
            outcome = type(exc).__name__
        if outcome != "rolled back":
            logger.error(
                "state rollback failed; redis is ahead of mongodb",
                extra={"machine": name, "version": new.version, "outcome": outcome},
            )


def _key(name: str) -> str:
    return f"state:{name}"


def iso(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds (what MongoDB keeps) and a ``Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
