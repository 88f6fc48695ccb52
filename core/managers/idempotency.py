"""Idempotency keys in Redis: the first answer of a request, replayed to its retries.

A client that retries a write after a timeout sends the same ``Idempotency-Key``; an endpoint
that opted in (``idempotent``) runs once per key and caller, and every retry gets the first
answer again. One record per ``(caller, key)``, ``idem:<caller>:<sha256(key)>``:

- ``begin`` (one Lua call): no record -> a *pending* one is written (this request runs);
  a record with another request fingerprint -> :class:`Mismatch`; a pending one -> :class:`InUse`;
  a finished one -> :class:`Replay` of its status, body and content type;
- ``finish`` stores the answer over the request's own pending record; ``abandon`` removes that
  record (the request failed in a way a retry should repeat). Both check a token, so a
  request never touches another's record.

Records live ``IDEMPOTENCY_TTL`` seconds from the first request, pending ones included: a
process that dies while running a request leaves its key pending (409 to every retry) until
then rather than risk running it twice.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from core.managers.redis import RedisManager

#: The first segment of every record's Redis key.
NAMESPACE = "idem"

_BEGIN = """
local existing = redis.call('GET', KEYS[1])
if existing then
    return existing
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""

# Replace (or remove, when ARGV[2] is empty) the record only while it is this request's own
# pending one; keep its expiry.
_SETTLE = """
local existing = redis.call('GET', KEYS[1])
if not existing then
    return 0
end
local record = cjson.decode(existing)
if record['state'] ~= 'pending' or record['token'] ~= ARGV[1] then
    return 0
end
if ARGV[2] == '' then
    redis.call('DEL', KEYS[1])
else
    redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
end
return 1
"""


@dataclass(frozen=True)
class Reserved:
    """This request holds the key: run it, then :meth:`IdempotencyStore.finish` or
    :meth:`IdempotencyStore.abandon`."""

    record: str
    token: str
    fingerprint: str


@dataclass(frozen=True)
class Replay:
    """The key's first answer."""

    status: int
    body: str
    content_type: str


@dataclass(frozen=True)
class InUse:
    """The first request with this key is still running."""


@dataclass(frozen=True)
class Mismatch:
    """The key was used with another request (method, path, query or body)."""


Outcome = Reserved | Replay | InUse | Mismatch


def fingerprint(*parts: str | bytes) -> str:
    """A digest of what makes two requests the same request."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


class IdempotencyStore:
    """``(caller, key)`` -> the first answer, for ``ttl`` seconds."""

    def __init__(self, redis: RedisManager, ttl: float) -> None:
        self.redis = redis
        self.ttl_ms = max(1, int(ttl * 1000))
        redis.register_script("idempotency_begin", _BEGIN)
        redis.register_script("idempotency_settle", _SETTLE)

    @staticmethod
    def record_name(caller: str, key: str) -> str:
        return f"{NAMESPACE}:{caller}:{hashlib.sha256(key.encode()).hexdigest()}"

    def begin(self, caller: str, key: str, request_fingerprint: str) -> Outcome:
        """Reserve ``key`` for ``caller``'s request, or say why it cannot run."""
        record, token = self.record_name(caller, key), secrets.token_hex(8)
        pending = json.dumps({"state": "pending", "fp": request_fingerprint, "token": token})
        existing = self.redis.call_script(
            "idempotency_begin", keys=[record], args=[pending, self.ttl_ms]
        )
        if not existing:
            return Reserved(record, token, request_fingerprint)
        found: dict[str, Any] = json.loads(existing)
        if found.get("fp") != request_fingerprint:
            return Mismatch()
        if found.get("state") != "done":
            return InUse()
        return Replay(int(found["status"]), str(found["body"]), str(found["type"]))

    def finish(self, reserved: Reserved, status: int, body: str, content_type: str) -> bool:
        """Keep the answer for the key's retries; False when the record is no longer ours."""
        done = {"state": "done", "fp": reserved.fingerprint, "status": status, "body": body}
        return self._settle(reserved, json.dumps({**done, "type": content_type}))

    def abandon(self, reserved: Reserved) -> bool:
        """Forget the key: its next request runs again."""
        return self._settle(reserved, "")

    def _settle(self, reserved: Reserved, record: str) -> bool:
        settled = self.redis.call_script(
            "idempotency_settle", keys=[reserved.record], args=[reserved.token, record]
        )
        return bool(settled)
