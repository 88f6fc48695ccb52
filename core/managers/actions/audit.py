"""The audit log writer: one ``audit_log`` row per execution, off the response path.

Requests hand rows to a bounded in-memory queue (``AUDIT_QUEUE_SIZE``) and return at once; one
background thread (``audit-writer``) writes them to PostgreSQL in batches. The trade-offs:

- **Full queue**: the row is dropped, counted (``dropped``) and logged (at most one warning
  every 10 s, with the running total). The request is never slowed down or failed by audit.
- **PostgreSQL unreachable**: the batch is kept and retried with exponential backoff (0.1 s up
  to 5 s) for as long as it takes; new rows queue up meanwhile (and are dropped once full).
- **Any other database error** (a missing table, a bad value): logged with its traceback and
  retried twice more, then the batch is given up and counted as ``failed``.
- **Clean shutdown**: :meth:`AuditWriter.close` lets the thread drain the queue and write every
  row, waiting up to ``timeout`` seconds; what could not be written by then (PostgreSQL down
  during shutdown) is counted as ``failed`` and logged. A crash (SIGKILL) loses the queue.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg2.extras

from config.settings import Settings
from core.errors import DependencyUnavailable
from core.managers.database import PostgresStore
from core.managers.database.json import to_json_compatible

logger = logging.getLogger(__name__)

BATCH_SIZE = 200
BACKOFF_START, BACKOFF_MAX = 0.1, 5.0
#: Attempts for a batch the database refuses for a reason other than being unreachable.
REFUSED_ATTEMPTS = 3
_DROP_LOG_INTERVAL = 10.0

Sink = Callable[[Sequence["AuditRecord"]], None]


class Digest:
    """Keyed HMAC-SHA256 (hex) of values, so a digest of a small value (a PIN, an email)
    cannot be reversed by hashing every candidate without the key.

    The key is ``AUDIT_DIGEST_KEY`` (secret file > Vault > env); unset, it is derived from
    ``ENCRYPTION_KEY``, so production needs no extra secret.
    """

    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def from_settings(cls, settings: Settings) -> Digest:
        if settings.audit_digest_key:
            return cls(settings.audit_digest_key.encode())
        derived = hmac.new(settings.encryption_key.encode(), b"audit-digest-key", "sha256")
        return cls(derived.digest())

    def __call__(self, value: Any) -> str:
        """Of a string, its UTF-8; of anything else, its canonical JSON (sorted keys, no
        spaces, UTF-8)."""
        text = value if isinstance(value, str) else _canonical(value)
        return hmac.new(self._key, text.encode(), "sha256").hexdigest()


def _canonical(params: Any) -> str:
    # The C encoder walks the value; only what JSON lacks (datetimes, ObjectIds) is converted.
    return json.dumps(
        params,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=to_json_compatible,
    )


@dataclass(frozen=True)
class AuditRecord:
    """One row of ``audit_log`` (see ``0001_audit_log.sql``)."""

    occurred_at: datetime
    kind: str
    action: str
    principal_type: str | None
    principal_id: str | None
    outcome: str
    status: int | None
    duration_ms: float | None
    request_id: str | None
    params_digest: str | None
    details: dict[str, Any] = field(default_factory=dict)


_INSERT = (
    "INSERT INTO audit_log (occurred_at, kind, action, principal_type, principal_id, outcome,"
    " status, duration_ms, request_id, params_digest, details) VALUES %s"
)


def postgres_sink(postgres: PostgresStore) -> Sink:
    """Write a batch in one transaction (one multi-row INSERT)."""

    def write(batch: Sequence[AuditRecord]) -> None:
        rows = [
            (
                r.occurred_at,
                r.kind,
                r.action,
                r.principal_type,
                r.principal_id,
                r.outcome,
                r.status,
                r.duration_ms,
                r.request_id,
                r.params_digest,
                psycopg2.extras.Json(r.details),
            )
            for r in batch
        ]
        with postgres.transaction() as cursor:
            psycopg2.extras.execute_values(cursor, _INSERT, rows, page_size=BATCH_SIZE)

    return write


class AuditWriter:
    """A bounded queue drained by one background thread; see the module docstring."""

    def __init__(self, sink: Sink, max_queue: int, *, batch_size: int = BATCH_SIZE) -> None:
        self._sink = sink
        self._batch_size = batch_size
        # None wakes the thread up at close; it is not a row.
        self._queue: queue.Queue[AuditRecord | None] = queue.Queue(maxsize=max_queue)
        self._done = threading.Condition()
        self._stopping = threading.Event()
        self._give_up_at: float | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._last_drop_log = 0.0
        #: ``callback(rows)`` for every dropped row (metrics); a failing one is logged.
        self.drop_listeners: list[Callable[[int], None]] = []
        #: Rows accepted, written, dropped (queue full or closed) and failed (given up).
        self.accepted = self.written = self.dropped = self.failed = 0

    def write(self, record: AuditRecord) -> bool:
        """Queue ``record`` without blocking; False (and counted) when it had to be dropped."""
        if self._closed:
            self._drop("writer closed")
            return False
        self._ensure_thread()
        with self._done:
            self.accepted += 1  # before the put, so the thread never writes an uncounted row
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            with self._done:
                self.accepted -= 1
            self._drop("queue full")
            return False
        return True

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every row accepted so far is written (or given up); False on timeout."""
        with self._done:
            target = self.accepted
            return self._done.wait_for(lambda: self.written + self.failed >= target, timeout)

    def stats(self) -> dict[str, int]:
        with self._done:
            pending = self.accepted - self.written - self.failed
            return {
                "pending": pending,
                "written": self.written,
                "dropped": self.dropped,
                "failed": self.failed,
            }

    def close(self, timeout: float = 5.0) -> None:
        """Write every queued row (waiting up to ``timeout`` s), then stop. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._give_up_at = time.monotonic() + timeout
        self._stopping.set()
        with contextlib.suppress(queue.Full):  # a full queue keeps the thread busy anyway
            self._queue.put_nowait(None)
        if self._thread is not None:
            self._thread.join(timeout + 1.0)
        lost = self.stats()["pending"]
        if lost:
            logger.error("audit rows not written at shutdown", extra={"rows": lost})
        if self.dropped or self.failed:
            logger.warning(
                "audit rows lost", extra={"dropped": self.dropped, "failed": self.failed}
            )

    # -- the thread -------------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._done:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch:
                self._write(batch)
            elif self._stopping.is_set():
                return

    def _next_batch(self) -> list[AuditRecord]:
        try:
            first = self._queue.get(timeout=0.5)
        except queue.Empty:
            return []
        batch = [] if first is None else [first]
        while len(batch) < self._batch_size:
            try:
                record = self._queue.get_nowait()
            except queue.Empty:
                break
            if record is not None:
                batch.append(record)
        return batch

    def _write(self, batch: list[AuditRecord]) -> None:
        delay, refused = BACKOFF_START, 0
        while True:
            try:
                self._sink(batch)
            except DependencyUnavailable:
                logger.warning("audit write failed: postgres unavailable; retrying")
            except Exception:
                refused += 1
                logger.exception("audit write refused", extra={"attempt": refused})
                if refused >= REFUSED_ATTEMPTS:
                    self._settle(failed=len(batch))
                    return
            else:
                self._settle(written=len(batch))
                return
            if self._give_up_at is not None and time.monotonic() + delay > self._give_up_at:
                self._settle(failed=len(batch) + self._discard_queue())
                return
            time.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)

    def _discard_queue(self) -> int:
        count = 0
        while True:
            try:
                record = self._queue.get_nowait()
            except queue.Empty:
                return count
            count += record is not None

    def _settle(self, *, written: int = 0, failed: int = 0) -> None:
        with self._done:
            self.written += written
            self.failed += failed
            self._done.notify_all()

    def _drop(self, reason: str) -> None:
        for listener in self.drop_listeners:
            try:
                listener(1)
            except Exception:
                logger.exception("audit drop listener failed")
        with self._done:
            self.dropped += 1
            now = time.monotonic()
            if now - self._last_drop_log < _DROP_LOG_INTERVAL and self.dropped > 1:
                return
            self._last_drop_log = now
        logger.warning("audit row dropped", extra={"reason": reason, "dropped": self.dropped})
