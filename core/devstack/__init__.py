"""Real MongoDB, PostgreSQL, Redis and Vault servers as child processes, for dev and tests.

Dev/test only: the server binaries come from requirements-dev.txt packages, imported lazily
(inside functions), so importing this package costs nothing where they are not installed.
SecantusDB (GPL) is only ever run as the `secantusd-py` program, never imported.
"""

from __future__ import annotations

from core.devstack._base import DevServer, DevServerError, PortInUseError, free_port, wait_for
from core.devstack.mongodb import MongoServer
from core.devstack.postgres import PostgresServer
from core.devstack.redis import RedisServer
from core.devstack.stack import DevStack
from core.devstack.vault import VaultServer

__all__ = [
    "DevServer",
    "DevServerError",
    "DevStack",
    "MongoServer",
    "PortInUseError",
    "PostgresServer",
    "RedisServer",
    "VaultServer",
    "free_port",
    "wait_for",
]
