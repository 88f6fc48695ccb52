"""The names the framework's own storage takes: a feature module must not be called one.

A module's data is named after the module (the scaffold's collection is the module's name, its
Redis keys and quota counters start with it), so a module called ``users`` would write into the
auth module's ``users`` collection, and one called ``jwt`` next to the revocation marks.
``flask module new`` refuses every name below, every MongoDB collection a loaded module
declares, and every module name (docs/modules.md, "Names"); start-up refuses a module written
by hand under such a name (:mod:`core.managers.modules`), except :data:`SURFACES`. A test runs
the framework and checks that each collection and each first segment of a Redis key it wrote
is listed here or belongs to a module, so this list cannot fall behind.
"""

from __future__ import annotations

from core.managers.api_keys import COLLECTION as API_KEYS
from core.managers.database.quotas import COLLECTION as QUOTAS
from core.managers.idempotency import NAMESPACE as IDEMPOTENCY
from core.managers.state.store import COLLECTION as STATES
from core.managers.websocket.presence import NAMESPACE as WEBSOCKET

#: name -> what of the framework's uses it.
FRAMEWORK_STORAGE: dict[str, str] = {
    API_KEYS: "the API keys' MongoDB collection and Redis keys",
    QUOTAS: "the quota counters' MongoDB collection",
    STATES: "the state machines' MongoDB collection",
    "state": "the state machines' Redis keys",
    "rl": "the rate limiter's Redis keys",
    IDEMPOTENCY: "the idempotency keys' Redis records",
    "jwt": "the revocation marks' Redis keys",
    WEBSOCKET: "the Socket.IO presence and room log's Redis keys (and the rooms module's records)",
    "socketio": "the Socket.IO message queue's Redis channel",
    "audit": "the audit log's PostgreSQL table (audit_log)",
    "schema": "the migrations' PostgreSQL table (schema_migrations)",
}

#: Framework storage whose HTTP and CLI surface is a module of the same name, which writes
#: nothing of its own (``modules/api_keys`` serves the ApiKeyManager): that module may load
#: under the name. ``flask module new`` still refuses it (the module exists).
SURFACES: frozenset[str] = frozenset({API_KEYS})
