"""Security events: one call records an audit row, a structured log line and a metric.

``app_manager.security.record("login.failed", outcome="failed", email=...)`` is the one way to
record a security event (framework code and modules alike). What it does:

- an ``audit_log`` row of kind ``security`` through the actions' background audit writer
  (never on the response path; a full queue drops and counts the row like any audit row);
- a log line ``security event`` with ``event``, ``outcome`` and the details as fields, at the
  event's level (:data:`LEVELS`; WARNING for anything suspicious, such as refresh-token reuse);
- ``security_events_total{event,outcome}``.

Details never carry a password, token or key: :meth:`SecurityEvents.record` refuses detail
names that look like one, and the login events carry the attempted email only as its keyed
digest (:meth:`SecurityEvents.digest`, the audit HMAC key). The request id, client IP and the
authenticated caller are taken from the request context when there is one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import g, has_request_context, request

from core.managers.actions.audit import AuditRecord, AuditWriter, Digest

logger = logging.getLogger("security")

KIND = "security"
#: Log level of each framework event; events not listed here log at WARNING.
LEVELS = {
    "login.ok": logging.INFO,
    "login.failed": logging.WARNING,
    "login.locked": logging.WARNING,
    "refresh.reused": logging.WARNING,
    "logout": logging.INFO,
    "session.revoked": logging.INFO,
    "api_key.created": logging.INFO,
    "api_key.revoked": logging.INFO,
    "api_key.invalid": logging.WARNING,
    "ratelimit.ban": logging.WARNING,
    "ratelimit.unban": logging.WARNING,
    "maintenance.on": logging.WARNING,
    "maintenance.off": logging.WARNING,
}
_SECRET_NAMES = ("password", "token", "secret", "key")
_SAFE_NAMES = frozenset({"key_id", "key_prefix", "key_name"})

Counter = Callable[[str, str], None]


class SecurityEvents:
    """Records security events; reachable as ``app_manager.security``."""

    def __init__(self, audit: AuditWriter, digest: Digest, count: Counter) -> None:
        self._audit = audit
        self._count = count
        self.digest = digest

    def record(
        self,
        event: str,
        outcome: str = "ok",
        *,
        principal_type: str | None = None,
        principal_id: str | None = None,
        status: int | None = None,
        **details: Any,
    ) -> None:
        """Record ``event`` (``login.failed``...) with ``outcome`` and non-secret ``details``."""
        unsafe = [n for n in details if n not in _SAFE_NAMES and n.endswith(_SECRET_NAMES)]
        if unsafe:
            raise ValueError(f"security event details must not carry secrets: {unsafe}")
        request_id = None
        if has_request_context():
            request_id = g.get("request_id")
            details.setdefault("ip", request.remote_addr)
            principal = g.get("principal")
            if principal_id is None and principal is not None:
                principal_type, principal_id = principal.type, principal.id
        self._audit.write(
            AuditRecord(
                occurred_at=datetime.now(UTC),
                kind=KIND,
                action=event,
                principal_type=principal_type,
                principal_id=principal_id,
                outcome=outcome,
                status=status,
                duration_ms=None,
                request_id=request_id,
                params_digest=None,
                details=details,
            )
        )
        who = f"{principal_type}:{principal_id}" if principal_id else None
        logger.log(
            LEVELS.get(event, logging.WARNING),
            "security event",
            extra={"event": event, "outcome": outcome, "principal": who, "details": details},
        )
        self._count(event, outcome)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until recorded rows are written (CLI commands call it before exiting)."""
        return self._audit.flush(timeout)
