"""RedisManager: one connection pool per process, timeouts on every call, namespaced keys.

Every key and channel the framework uses is built by :meth:`RedisManager.key` so that one
prefix (``REDIS_KEY_PREFIX``) namespaces an application inside a shared Redis. The helpers
below (JSON values, the cache, pub/sub, Lua scripts) take *logical* names and namespace them
themselves; code using ``client`` directly builds its keys with :meth:`key`. TLS
(``rediss://``) and the password come from ``REDIS_URL``.

Redis errors are not swallowed: ``redis.ConnectionError``/``TimeoutError`` and an out-of-memory
refusal reach the HTTP layer as 503 ``DEPENDENCY_UNAVAILABLE`` (see ``unavailable_errors``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from config.settings import Settings
from core.errors import StartupError
from core.managers.base import HealthCheck, HealthResult, Manager, timed_check
from core.managers.redis.codec import dumps, loads
from core.managers.redis.pool import blocking_pool
from core.managers.redis.pubsub import Callback, Listener, Message
from core.managers.redis.scripts import Script, ScriptArg, ScriptRegistry

logger = logging.getLogger(__name__)
#: The only policy under which Redis never drops a key before it expires.
REQUIRED_EVICTION_POLICY = "noeviction"


class RedisManager(Manager):
    name = "redis"
    # Out of memory (maxmemory reached under noeviction) refuses writes: unavailable, not a bug.
    unavailable_errors = (
        redis.ConnectionError,
        redis.TimeoutError,
        redis.exceptions.OutOfMemoryError,
    )

    def __init__(self, settings: Settings) -> None:
        self.prefix = settings.redis_key_prefix
        self.url = settings.redis_url
        self.max_connections = settings.redis_max_connections
        self.pool_timeout = settings.redis_pool_timeout_ms / 1000
        self.socket_timeout_ms = settings.redis_socket_timeout_ms
        self.client: redis.Redis = self.new_client("python-base-04")
        #: (used_memory, maxmemory) in bytes as the last readiness check read them.
        self.memory: tuple[int, int] | None = None
        self.scripts = ScriptRegistry(self.client, self.key)
        self._listener = Listener(self.client)

    def new_client(self, name: str, timeout_ms: int | None = None) -> redis.Redis:
        """A client of the server with a pool of its own, as every Redis client of the app:
        at most ``REDIS_MAX_CONNECTIONS`` connections, and a caller that finds them all in use
        waits up to ``REDIS_POOL_TIMEOUT_MS`` for one (:mod:`.pool`).

        With the default ``timeout_ms`` (``REDIS_SOCKET_TIMEOUT_MS``), one quick retry on a
        dropped connection (a restarted server, an idle socket the network closed); more
        would multiply the time a request waits on a dead server. Timeouts are not retried:
        the command may have run, and INCR must not run twice. With a ``timeout_ms`` of its
        own (the rate limiter's budget), no retry at all: the caller must give up in
        milliseconds.
        """
        options: dict[str, Any] = (
            {"retry": Retry(NoBackoff(), 0)}
            if timeout_ms is not None
            else {
                "retry": Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
                "health_check_interval": 30,
            }
        )
        timeout = (self.socket_timeout_ms if timeout_ms is None else timeout_ms) / 1000
        pool = blocking_pool(
            self.url,
            self.max_connections,
            self.pool_timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            client_name=name,
            **options,
        )
        return redis.Redis.from_pool(pool)

    def key(self, *parts: str | int) -> str:
        """The namespaced key ``<prefix><part>:<part>...``; the only way keys are built."""
        return self.prefix + ":".join(str(part) for part in parts)

    # -- JSON values and the cache ------------------------------------------------------

    def set_json(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store ``value`` as JSON under ``key``, expiring after ``ttl`` seconds if given."""
        self.client.set(self.key(key), dumps(value), px=_ttl_ms(ttl))

    def get_json(self, key: str, default: Any = None) -> Any:
        """The value stored by :meth:`set_json`, or ``default`` when the key does not exist."""
        raw = self.client.get(self.key(key))
        return default if raw is None else loads(raw)

    def delete(self, *keys: str) -> int:
        """Delete ``keys``; returns how many existed."""
        return int(self.client.delete(*(self.key(k) for k in keys))) if keys else 0

    def cached(self, key: str, ttl: float, compute: Callable[[], Any]) -> Any:
        """The cached value of ``key``, else ``compute()`` stored for ``ttl`` seconds.

        A ``compute`` that raises stores nothing, so a failure is retried by the next call.
        A stored ``None`` is a hit (the key exists), not a miss.
        """
        full_key = self.key(key)
        raw = self.client.get(full_key)
        if raw is not None:
            return loads(raw)
        value = compute()
        self.client.set(full_key, dumps(value), px=_ttl_ms(ttl))
        return value

    # -- pub/sub -------------------------------------------------------------------------

    def publish(self, channel: str, message: Message) -> int:
        """Publish a JSON object on ``channel``; returns how many subscribers received it."""
        if not isinstance(message, dict):
            raise TypeError("a pub/sub message is a dict")
        return int(self.client.publish(self.key(channel), dumps(message)))

    def subscribe(self, channel: str, callback: Callback) -> bool:
        """Call ``callback(message)`` for each message on ``channel``, on the listener thread.

        Returns True once Redis confirmed the subscription (waits at most a few seconds);
        False while Redis is unreachable, in which case the listener subscribes when it can.
        """
        return self._listener.subscribe(self.key(channel), callback)

    def unsubscribe(self, channel: str, callback: Callback) -> None:
        self._listener.unsubscribe(self.key(channel), callback)

    @property
    def pubsub_connected(self) -> bool:
        """True while every subscription is live; False before the first or during an outage."""
        return self._listener.connected

    @property
    def pubsub_epoch(self) -> int:
        """Changes on every (re)subscription: messages may have been missed before it."""
        return self._listener.epoch

    # -- Lua scripts ---------------------------------------------------------------------

    def register_script(self, name: str, lua: str) -> Script:
        """Register ``lua`` as ``name`` (no network); the same name needs the same source."""
        return self.scripts.register(name, lua)

    def call_script(
        self, name: str, keys: Sequence[str] = (), args: Sequence[ScriptArg] = ()
    ) -> Any:
        """Run the registered script ``name`` by SHA; reloaded if Redis forgot it."""
        return self.scripts.get(name)(keys, args)

    def check_eviction_policy(self) -> None:
        """Refuse a server that may evict keys: revocation marks, bans, lockouts and rooms
        must stay until they expire. Only ``noeviction`` keeps them (``volatile-*`` evicts
        exactly the keys with a TTL, such as revocation marks). A server that does not say
        (a proxy hiding INFO) is logged and accepted."""
        policy = self.client.info("memory").get("maxmemory_policy")
        if policy is None:
            logger.warning("redis does not report maxmemory-policy; noeviction is required")
            return
        if policy != REQUIRED_EVICTION_POLICY:
            raise StartupError(
                f"redis maxmemory-policy is {policy!r}: it may evict revocation marks and bans;"
                f" set maxmemory-policy {REQUIRED_EVICTION_POLICY} (see docs/deploy.md)"
            )

    # -- contract ------------------------------------------------------------------------

    def start(self) -> None:
        """Fail start-up now, not on the first request, when Redis is unreachable or may
        evict keys."""
        self.client.ping()
        self.check_eviction_policy()

    def health(self) -> HealthResult:
        if not self._listener.running:
            return timed_check(self._ping)
        pubsub = "connected" if self._listener.connected else "reconnecting"
        return timed_check(self._ping, pubsub=pubsub)

    def _ping(self) -> None:
        """PING, and read the memory figures in the same round trip (kept for the metrics,
        never in the public readiness answer)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.ping()
        pipe.info("memory")
        _, info = pipe.execute()
        self.memory = (int(info["used_memory"]), int(info.get("maxmemory", 0)))

    def readiness_checks(self) -> dict[str, HealthCheck]:
        return {"redis": self.health}

    def close(self) -> None:
        self._listener.close()
        self.client.close()
        self.client.connection_pool.disconnect()


def _ttl_ms(ttl: float | None) -> int | None:
    if ttl is None:
        return None
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    return max(1, round(ttl * 1000))
