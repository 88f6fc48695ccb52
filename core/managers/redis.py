"""RedisManager: one connection pool per process, timeouts on every call, namespaced keys.

Every key the framework writes is built by :meth:`RedisManager.key` so that one prefix
(``REDIS_KEY_PREFIX``) namespaces an application inside a shared Redis. TLS (``rediss://``)
and the password come from ``REDIS_URL``.
"""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from config.settings import Settings
from core.managers.base import HealthCheck, HealthResult, Manager, timed_check


class RedisManager(Manager):
    name = "redis"
    unavailable_errors = (redis.ConnectionError, redis.TimeoutError)

    def __init__(self, settings: Settings) -> None:
        timeout = settings.redis_socket_timeout_ms / 1000
        self.prefix = settings.redis_key_prefix
        # One quick retry on a dropped connection (a restarted server, an idle socket the
        # network closed); more would multiply the time a request waits on a dead server.
        self.client: redis.Redis = redis.Redis.from_url(
            settings.redis_url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            max_connections=settings.redis_max_connections,
            health_check_interval=30,
            retry=Retry(NoBackoff(), 1),
            client_name="python-base-04",
        )

    def key(self, *parts: str | int) -> str:
        """The namespaced key ``<prefix><part>:<part>...``; the only way keys are built."""
        return self.prefix + ":".join(str(part) for part in parts)

    def health(self) -> HealthResult:
        return timed_check(self.client.ping)

    def readiness_checks(self) -> dict[str, HealthCheck]:
        return {"redis": self.health}

    def close(self) -> None:
        self.client.close()
        self.client.connection_pool.disconnect()
