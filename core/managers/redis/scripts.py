"""Registry of Lua scripts, called by SHA (EVALSHA) and reloaded when Redis forgot them.

A script is registered once by name; nothing touches the network until it is first called.
Calls use ``EVALSHA``; a ``NOSCRIPT`` answer (after ``SCRIPT FLUSH``, a restart or a failover)
loads the script and retries once. ``loads`` counts those loads (the first call is one), for
tests and metrics.
Keys passed to a script are logical names, namespaced like every other RedisManager key
(``namespace=None``: the caller passes full key names). ``direct=True`` sends the calls on
held connections (:class:`core.managers.redis.direct.DirectConnections`), for a script on
the request path and a client without retries.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import redis
from redis.exceptions import NoScriptError

from core.managers.redis.direct import DirectConnections

logger = logging.getLogger(__name__)

ScriptArg = str | int | float | bytes
Namespace = Callable[[str], str]


class Script:
    """One Lua script bound to a client; call it with keys and args."""

    def __init__(
        self,
        name: str,
        lua: str,
        client: redis.Redis,
        namespace: Namespace | None,
        *,
        direct: bool = False,
    ) -> None:
        self.name = name
        self.lua = lua
        self.sha = hashlib.sha1(lua.encode(), usedforsecurity=False).hexdigest()
        self.loads = 0
        self._client = client
        self._namespace = namespace
        self._execute = DirectConnections(client).execute if direct else client.execute_command

    def __call__(self, keys: Sequence[str] = (), args: Sequence[ScriptArg] = ()) -> Any:
        """Run with ``keys`` (logical names) and ``args``; the Redis reply as redis-py gives it."""
        if self._namespace is not None:
            keys = [self._namespace(key) for key in keys]
        try:
            return self._execute("EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:
            self.loads += 1
            logger.info("lua script loaded", extra={"script": self.name})
            self._client.script_load(self.lua)
            return self._execute("EVALSHA", self.sha, len(keys), *keys, *args)


class ScriptRegistry:
    """Scripts by name; registering the same name twice must give the same source."""

    def __init__(self, client: redis.Redis, namespace: Namespace) -> None:
        self._client = client
        self._namespace = namespace
        self._scripts: dict[str, Script] = {}
        self._lock = threading.Lock()

    def register(self, name: str, lua: str) -> Script:
        with self._lock:
            existing = self._scripts.get(name)
            if existing is not None:
                if existing.lua != lua:
                    raise ValueError(f"lua script {name!r} is already registered differently")
                return existing
            script = self._scripts[name] = Script(name, lua, self._client, self._namespace)
            return script

    def get(self, name: str) -> Script:
        try:
            return self._scripts[name]
        except KeyError:
            raise KeyError(f"no lua script registered as {name!r}") from None

    def names(self) -> list[str]:
        return sorted(self._scripts)
